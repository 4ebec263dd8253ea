//! The multipart/form-data splitter of `/ingest`: the first line is the
//! Content-Type, the rest the body. No panic; parts are pieces of the body
//! with unique names.

pub fn run(data: &[u8]) {
    let Some(nl) = data.iter().position(|&b| b == b'\n') else {
        return;
    };
    let Ok(content_type) = std::str::from_utf8(&data[..nl]) else {
        return;
    };
    let body = &data[nl + 1..];
    let Ok(parts) = perfpilot_wire::multipart::parse(content_type, body) else {
        return;
    };
    let range = body.as_ptr_range();
    for (i, p) in parts.iter().enumerate() {
        let r = p.body.as_ptr_range();
        assert!(
            p.body.is_empty() || (range.start <= r.start && r.end <= range.end),
            "part {i} is not inside the body"
        );
        assert!(
            parts[..i].iter().all(|q| q.name != p.name),
            "part name {:?} twice",
            p.name
        );
    }
}
