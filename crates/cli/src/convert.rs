//! `perfpilot convert`.

use anyhow::Context;
use perfpilot_model::Format;

use crate::exit::{self, Failure};
use crate::ConvertArgs;

pub fn run(args: ConvertArgs) -> exit::Result<()> {
    let out_format = crate::output_format(args.format, &args.output)?;
    let bytes = std::fs::read(&args.input)
        .with_context(|| format!("cannot read {}", args.input.display()))
        .map_err(|e| Failure::new(exit::BAD_INPUT, e))?;
    let in_format = Format::sniff(&bytes);
    if !in_format.is_readable() {
        return Err(Failure::new(
            exit::BAD_INPUT,
            anyhow::anyhow!(
                "{}: SVG flame graphs cannot be converted back into profiles",
                args.input.display()
            ),
        ));
    }
    let profile = in_format
        .decode(&bytes)
        .with_context(|| format!("{} (read as {in_format})", args.input.display()))
        .map_err(|e| Failure::new(exit::BAD_INPUT, e))?;
    let title = args
        .input
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let out = out_format
        .encode(&profile, &title)
        .with_context(|| format!("encoding {out_format}"))?;
    crate::record::write_atomically(&args.output, &out)?;
    Ok(())
}
