//! The byte layouts this side reads and writes, checked at build time
//! against the types the skeleton generates from the BPF object's BTF
//! (`skel::types`, from `profiler.h` as clang laid it out). The maps and
//! records are handled as bytes, at the offsets below; a field moved,
//! resized or added in the C without the same change here fails the
//! build instead of misreading samples.

use std::mem::{offset_of, size_of};

use super::skel::types;
use super::{
    EXEC_MAP_SIZE, MAX_EXEC_MAPS, MAX_FRAMES, PROC_MAPS_SIZE, PY_FILE_LEN, PY_NAME_LEN,
    PY_PROC_SIZE, RAW_HEADER_SIZE, RAW_STACK_MAX, SAMPLE_KEY_SIZE, SAMPLE_VALUE_SIZE, STACK_SIZE,
    STAT_COUNT, UNWIND_ROW_SIZE,
};

/// N of a `*mut [i32; N]` field: how the skeleton spells a map's
/// `__uint(name, N)`.
const fn uint<T, const N: usize>(_: fn(&T) -> &*mut [i32; N]) -> usize {
    N
}

/// `struct pp_sample_key` (decode_sample; the drainer's key size).
const _: () = {
    type K = types::pp_sample_key;
    assert!(size_of::<K>() == SAMPLE_KEY_SIZE);
    assert!(offset_of!(K, tgid) == 0);
    assert!(offset_of!(K, tid) == 4);
    assert!(offset_of!(K, user_stack) == 8);
    assert!(offset_of!(K, kernel_stack) == 16);
    assert!(offset_of!(K, python_stack) == 24);
    assert!(offset_of!(K, flags) == 32);
};

/// `struct pp_sample_value` (decode_sample).
const _: () = {
    type V = types::pp_sample_value;
    assert!(size_of::<V>() == SAMPLE_VALUE_SIZE);
    assert!(offset_of!(V, count) == 0);
    assert!(offset_of!(V, comm) == 8);
    assert!(offset_of!(V, events) == 24);
    assert!(size_of::<V>() - offset_of!(V, events) == 8);
};

/// `struct pp_stack`: a length, then MAX_FRAMES addresses.
const _: () = {
    type S = types::pp_stack;
    assert!(size_of::<S>() == STACK_SIZE);
    assert!(offset_of!(S, len) == 0);
    assert!(offset_of!(S, ips) == 8);
    assert!(size_of::<S>() - offset_of!(S, ips) == 8 * MAX_FRAMES);
};

/// `struct pp_proc_maps` and its `struct pp_exec_map`s (set_process,
/// mark_kernel_thread).
const _: () = {
    type P = types::pp_proc_maps;
    type M = types::pp_exec_map;
    assert!(size_of::<P>() == PROC_MAPS_SIZE);
    assert!(offset_of!(P, count) == 0);
    assert!(offset_of!(P, flags) == 4);
    assert!(offset_of!(P, maps) == 8);
    assert!(size_of::<P>() - offset_of!(P, maps) == EXEC_MAP_SIZE * MAX_EXEC_MAPS);
    assert!(size_of::<M>() == EXEC_MAP_SIZE);
    assert!(offset_of!(M, start) == 0);
    assert!(offset_of!(M, end) == 8);
    assert!(offset_of!(M, bias) == 16);
    assert!(offset_of!(M, table) == 24);
    assert!(offset_of!(M, row_count) == 28);
};

/// `struct pp_py_proc` and its `struct pp_py_offsets` (PythonProcess::encode:
/// three u64s, then eighteen u16s in the order the C declares them, then
/// a u32).
const _: () = {
    type P = types::pp_py_proc;
    type O = types::pp_py_offsets;
    assert!(size_of::<P>() == PY_PROC_SIZE);
    assert!(offset_of!(P, runtime) == 0);
    assert!(offset_of!(P, pidns_dev) == 8);
    assert!(offset_of!(P, pidns_ino) == 16);
    assert!(offset_of!(P, o) == 24);
    assert!(offset_of!(P, task_fsbase) == 60);
    assert!(size_of::<O>() == 18 * 2);
    assert!(offset_of!(O, runtime_interp_head) == 0);
    assert!(offset_of!(O, runtime_tstate_current) == 2);
    assert!(offset_of!(O, interp_threads_head) == 4);
    assert!(offset_of!(O, tstate_next) == 6);
    assert!(offset_of!(O, tstate_native_thread_id) == 8);
    assert!(offset_of!(O, tstate_cframe) == 10);
    assert!(offset_of!(O, cframe_current_frame) == 12);
    assert!(offset_of!(O, frame_code) == 14);
    assert!(offset_of!(O, frame_previous) == 16);
    assert!(offset_of!(O, frame_is_entry) == 18);
    assert!(offset_of!(O, code_qualname) == 20);
    assert!(offset_of!(O, code_filename) == 22);
    assert!(offset_of!(O, code_firstlineno) == 24);
    assert!(offset_of!(O, unicode_state) == 26);
    assert!(offset_of!(O, unicode_ascii_data) == 28);
    assert!(offset_of!(O, unicode_compact_data) == 30);
    assert!(offset_of!(O, frame_owner) == 32);
    assert!(offset_of!(O, flags) == 34);
};

/// `struct pp_py_name_key` and `struct pp_py_name` (python_name).
const _: () = {
    type K = types::pp_py_name_key;
    type N = types::pp_py_name;
    assert!(size_of::<K>() == 16);
    assert!(offset_of!(K, tgid) == 0);
    assert!(offset_of!(K, code) == 8);
    assert!(size_of::<N>() == PY_NAME_LEN + PY_FILE_LEN + 8);
    assert!(offset_of!(N, qualname) == 0);
    assert!(offset_of!(N, filename) == PY_NAME_LEN);
    assert!(offset_of!(N, firstlineno) == PY_NAME_LEN + PY_FILE_LEN);
};

/// `struct pp_raw_stack`, a raw copy's header (RawStack::parse), and the
/// scratch it is built in: the header, then room for its data.
const _: () = {
    type R = types::pp_raw_stack;
    assert!(size_of::<R>() == RAW_HEADER_SIZE);
    assert!(offset_of!(R, tgid) == 0);
    assert!(offset_of!(R, tid) == 4);
    assert!(offset_of!(R, ip) == 8);
    assert!(offset_of!(R, sp) == 16);
    assert!(offset_of!(R, bp) == 24);
    assert!(offset_of!(R, user_stack) == 32);
    assert!(offset_of!(R, flags) == 40);
    assert!(offset_of!(R, kernel_len) == 44);
    assert!(offset_of!(R, python_len) == 46);
    assert!(offset_of!(R, stack_len) == 48);
    assert!(offset_of!(R, comm) == 56);
    assert!(
        size_of::<types::pp_raw_scratch>()
            == RAW_HEADER_SIZE + 2 * MAX_FRAMES * 8 + RAW_STACK_MAX + 4096
    );
};

/// `struct pp_unwind_row` (encode_row, decode_row), also the unwind
/// tables' value size.
const _: () = {
    type U = types::pp_unwind_row;
    assert!(size_of::<U>() == UNWIND_ROW_SIZE);
    assert!(offset_of!(U, pc) == 0);
    assert!(offset_of!(U, cfa_offset) == 4);
    assert!(offset_of!(U, rbp_offset) == 8);
    assert!(offset_of!(U, cfa_kind) == 10);
    assert!(offset_of!(U, rbp_kind) == 11);
    assert!(uint(|t: &types::pp_unwind_table| &t.value_size) == UNWIND_ROW_SIZE);
};

/// `struct pp_event` (decode_event).
const _: () = {
    type E = types::pp_event;
    assert!(size_of::<E>() == 8);
    assert!(offset_of!(E, kind) == 0);
    assert!(offset_of!(E, tgid) == 4);
};

/// The stats map: one counter per `enum pp_stat` (STAT_MAX of them).
const _: () = assert!(uint(|m: &types::maps| &m.stats.max_entries) == STAT_COUNT);
