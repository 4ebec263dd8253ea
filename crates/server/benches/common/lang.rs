//! What the generated stacks are made of, per language: thread entry
//! chains, the request-serving framework, libraries, libc and kernel
//! paths, and word lists for a service's own functions.
//!
//! Chains are root first. `{svc}` is replaced by the service's snake-case
//! name, `{Svc}` by its CamelCase name, `{mod}` by its Go module path and
//! `{ns}` by its C++ namespace.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Rust,
    Cpp,
    Go,
    Python,
}

/// A kind of thread and the chain every stack on it starts with.
pub struct ThreadKind {
    /// `thread_name` label; `{proc}` is the process name.
    pub name: &'static str,
    pub prefix: &'static [&'static str],
    /// Whether the prefix leads into the request framework (else into the
    /// service's background functions).
    pub serves: bool,
    /// Share of the process's CPU.
    pub share: f64,
    /// Threads of this kind per process (min, max).
    pub count: (usize, usize),
}

/// A branch off a chain: at the function named `at`, a call into `chain`,
/// which may end in a libc function (by name).
pub struct Side {
    pub at: &'static str,
    pub chain: &'static [&'static str],
    pub libc: Option<&'static str>,
}

pub struct Library {
    /// Entry first; deeper functions later (calls go to later entries).
    pub fns: &'static [&'static str],
    /// Functions may call earlier ones too (parsers, tree walks).
    pub recursive: bool,
    /// libc functions its deep functions call.
    pub libc: &'static [&'static str],
}

/// A libc (or runtime) leaf function and the kernel path it may enter.
pub struct LibcFn {
    pub name: &'static str,
    pub kernel: Option<&'static str>,
}

pub struct KernelPath {
    pub name: &'static str,
    pub chain: &'static [&'static str],
}

pub struct LangModel {
    pub lang: Lang,
    pub threads: &'static [ThreadKind],
    pub framework: &'static [&'static str],
    pub sides: &'static [Side],
    pub libs: &'static [Library],
    pub libc: &'static [LibcFn],
    /// Word lists for the service's own functions.
    pub modules: &'static [&'static str],
    pub types: &'static [&'static str],
    pub methods: &'static [&'static str],
    /// Executable path; `{proc}` is the process name.
    pub exe: &'static str,
}

const SYSCALL: [&str; 3] = [
    "entry_SYSCALL_64_after_hwframe",
    "do_syscall_64",
    "x64_sys_call",
];

macro_rules! syscall_path {
    ($($f:expr),* $(,)?) => {
        &[SYSCALL[0], SYSCALL[1], SYSCALL[2], $($f),*]
    };
}

pub const KERNEL: &[KernelPath] = &[
    KernelPath {
        name: "write_tcp",
        chain: syscall_path!(
            "__x64_sys_write",
            "ksys_write",
            "vfs_write",
            "sock_write_iter",
            "sock_sendmsg",
            "tcp_sendmsg",
            "tcp_sendmsg_locked",
            "__tcp_push_pending_frames",
            "tcp_write_xmit",
            "__tcp_transmit_skb",
            "__ip_queue_xmit",
            "ip_finish_output2",
            "__dev_queue_xmit",
            "dev_hard_start_xmit",
            "virtnet_poll_tx",
        ),
    },
    KernelPath {
        name: "read_tcp",
        chain: syscall_path!(
            "__x64_sys_recvfrom",
            "__sys_recvfrom",
            "sock_recvmsg",
            "inet_recvmsg",
            "tcp_recvmsg",
            "tcp_recvmsg_locked",
            "skb_copy_datagram_iter",
            "__skb_datagram_iter",
            "_copy_to_iter",
            "rep_movs_alternative",
        ),
    },
    KernelPath {
        name: "epoll",
        chain: syscall_path!(
            "__x64_sys_epoll_wait",
            "do_epoll_wait",
            "ep_poll",
            "schedule_hrtimeout_range_clock",
            "schedule",
            "__schedule",
            "finish_task_switch.isra.0",
        ),
    },
    KernelPath {
        name: "futex",
        chain: syscall_path!(
            "__x64_sys_futex",
            "do_futex",
            "futex_wait",
            "__futex_wait",
            "futex_wait_queue",
            "schedule",
            "__schedule",
            "finish_task_switch.isra.0",
        ),
    },
    KernelPath {
        name: "page_fault",
        chain: &[
            "asm_exc_page_fault",
            "exc_page_fault",
            "do_user_addr_fault",
            "handle_mm_fault",
            "__handle_mm_fault",
            "do_anonymous_page",
            "alloc_anon_folio",
            "vma_alloc_folio_noprof",
            "__alloc_pages_noprof",
            "get_page_from_freelist",
            "clear_page_erms",
        ],
    },
    KernelPath {
        name: "munmap",
        chain: syscall_path!(
            "__x64_sys_munmap",
            "__vm_munmap",
            "do_vmi_munmap",
            "do_vmi_align_munmap",
            "unmap_region",
            "tlb_finish_mmu",
            "folios_put_refs",
            "free_unref_folios",
        ),
    },
    KernelPath {
        name: "read_file",
        chain: syscall_path!(
            "__x64_sys_pread64",
            "vfs_read",
            "ext4_file_read_iter",
            "filemap_read",
            "filemap_get_pages",
            "filemap_get_read_batch",
            "copy_page_to_iter",
            "_copy_to_iter",
        ),
    },
    KernelPath {
        name: "irq",
        chain: &[
            "asm_sysvec_apic_timer_interrupt",
            "sysvec_apic_timer_interrupt",
            "__sysvec_apic_timer_interrupt",
            "hrtimer_interrupt",
            "__hrtimer_run_queues",
            "tick_nohz_handler",
            "update_process_times",
            "sched_tick",
            "task_tick_fair",
        ],
    },
];

const LIBC: &[LibcFn] = &[
    LibcFn {
        name: "__memmove_avx_unaligned_erms",
        kernel: Some("page_fault"),
    },
    LibcFn {
        name: "__memset_avx2_unaligned_erms",
        kernel: Some("page_fault"),
    },
    LibcFn {
        name: "__memcmp_avx2_movbe",
        kernel: None,
    },
    LibcFn {
        name: "__strlen_avx2",
        kernel: None,
    },
    LibcFn {
        name: "malloc",
        kernel: None,
    },
    LibcFn {
        name: "_int_malloc",
        kernel: Some("page_fault"),
    },
    LibcFn {
        name: "cfree@GLIBC_2.2.5",
        kernel: None,
    },
    LibcFn {
        name: "_int_free",
        kernel: Some("munmap"),
    },
    LibcFn {
        name: "realloc",
        kernel: None,
    },
    LibcFn {
        name: "__libc_write",
        kernel: Some("write_tcp"),
    },
    LibcFn {
        name: "__libc_recv",
        kernel: Some("read_tcp"),
    },
    LibcFn {
        name: "epoll_wait",
        kernel: Some("epoll"),
    },
    LibcFn {
        name: "__futex_abstimed_wait_common",
        kernel: Some("futex"),
    },
    LibcFn {
        name: "pthread_mutex_lock@@GLIBC_2.2.5",
        kernel: Some("futex"),
    },
    LibcFn {
        name: "__libc_pread64",
        kernel: Some("read_file"),
    },
];

const GO_RUNTIME_LEAVES: &[LibcFn] = &[
    LibcFn {
        name: "runtime.memmove",
        kernel: Some("page_fault"),
    },
    LibcFn {
        name: "runtime.memclrNoHeapPointers",
        kernel: Some("page_fault"),
    },
    LibcFn {
        name: "runtime.mallocgc",
        kernel: None,
    },
    LibcFn {
        name: "runtime.nextFreeFast",
        kernel: None,
    },
    LibcFn {
        name: "internal/runtime/syscall.Syscall6",
        kernel: Some("write_tcp"),
    },
    LibcFn {
        name: "runtime.futex",
        kernel: Some("futex"),
    },
    LibcFn {
        name: "runtime.epollwait",
        kernel: Some("epoll"),
    },
    LibcFn {
        name: "aeshashbody",
        kernel: None,
    },
    LibcFn {
        name: "runtime.mapaccess2_faststr",
        kernel: None,
    },
    LibcFn {
        name: "indexbytebody",
        kernel: None,
    },
];

const RUST_THREADS: &[ThreadKind] = &[
    ThreadKind {
        name: "tokio-runtime-w",
        prefix: &[
            "clone3",
            "start_thread",
            "std::sys::pal::unix::thread::Thread::new::thread_start",
            "core::ops::function::FnOnce::call_once{{vtable.shim}}",
            "std::sys::backtrace::__rust_begin_short_backtrace",
            "tokio::runtime::scheduler::multi_thread::worker::run",
            "tokio::runtime::context::runtime::enter_runtime",
            "tokio::runtime::scheduler::multi_thread::worker::Context::run",
            "tokio::runtime::scheduler::multi_thread::worker::Context::run_task",
            "tokio::runtime::task::raw::poll",
            "tokio::runtime::task::harness::Harness<T,S>::poll",
            "tokio::runtime::task::core::Core<T,S>::poll",
        ],
        serves: true,
        share: 0.85,
        count: (2, 4),
    },
    ThreadKind {
        name: "{proc}",
        prefix: &[
            "_start",
            "__libc_start_main@@GLIBC_2.34",
            "__libc_start_call_main",
            "main",
            "std::rt::lang_start_internal",
            "std::rt::lang_start::{{closure}}",
            "std::sys::backtrace::__rust_begin_short_backtrace",
            "{svc}::main",
            "tokio::runtime::runtime::Runtime::block_on",
            "tokio::runtime::park::CachedParkThread::block_on",
            "{svc}::main::{{closure}}",
        ],
        serves: false,
        share: 0.05,
        count: (1, 1),
    },
    ThreadKind {
        name: "tokio-blocking",
        prefix: &[
            "clone3",
            "start_thread",
            "std::sys::pal::unix::thread::Thread::new::thread_start",
            "core::ops::function::FnOnce::call_once{{vtable.shim}}",
            "std::sys::backtrace::__rust_begin_short_backtrace",
            "tokio::runtime::blocking::pool::Inner::run",
            "tokio::runtime::task::raw::poll",
            "tokio::runtime::task::harness::Harness<T,S>::poll",
            "<tokio::runtime::blocking::task::BlockingTask<T> as core::future::future::Future>::poll",
        ],
        serves: false,
        share: 0.10,
        count: (1, 2),
    },
];

const RUST_SIDES: &[Side] = &[
    Side {
        at: "tokio::runtime::scheduler::multi_thread::worker::Context::run",
        chain: &[
            "tokio::runtime::scheduler::multi_thread::worker::Context::park",
            "tokio::runtime::scheduler::multi_thread::worker::Context::park_timeout",
            "tokio::runtime::scheduler::multi_thread::park::Parker::park",
            "tokio::runtime::driver::Driver::park",
            "tokio::runtime::time::Driver::park_internal",
            "tokio::runtime::io::driver::Driver::turn",
            "mio::poll::Poll::poll",
        ],
        libc: Some("epoll_wait"),
    },
    Side {
        at: "tokio::runtime::scheduler::multi_thread::worker::Context::run",
        chain: &[
            "tokio::runtime::scheduler::multi_thread::worker::Core::steal_work",
            "tokio::runtime::scheduler::multi_thread::queue::Steal<T>::steal_into",
        ],
        libc: None,
    },
    Side {
        at: "hyper::proto::h1::dispatch::Dispatcher<D,Bs,I,T>::poll_inner",
        chain: &[
            "hyper::proto::h1::conn::Conn<I,B,T>::poll_read_head",
            "hyper::proto::h1::io::Buffered<T,B>::parse",
            "hyper::proto::h1::role::Server::parse",
            "httparse::Request::parse",
            "httparse::parse_headers_iter_uninit",
        ],
        libc: None,
    },
    Side {
        at: "hyper::proto::h1::dispatch::Dispatcher<D,Bs,I,T>::poll_inner",
        chain: &[
            "hyper::proto::h1::dispatch::Dispatcher<D,Bs,I,T>::poll_write",
            "hyper::proto::h1::conn::Conn<I,B,T>::write_head",
            "hyper::proto::h1::role::Server::encode",
            "http::header::map::HeaderMap<T>::insert",
        ],
        libc: Some("__memmove_avx_unaligned_erms"),
    },
    Side {
        at: "hyper::proto::h1::dispatch::Dispatcher<D,Bs,I,T>::poll_catch",
        chain: &[
            "hyper::proto::h1::io::Buffered<T,B>::poll_flush",
            "<tokio::net::tcp::stream::TcpStream as tokio::io::async_write::AsyncWrite>::poll_write_vectored",
            "mio::net::tcp::stream::TcpStream::write_vectored",
        ],
        libc: Some("__libc_write"),
    },
    Side {
        at: "hyper::proto::h1::dispatch::Dispatcher<D,Bs,I,T>::poll_read",
        chain: &[
            "hyper::proto::h1::io::Buffered<T,B>::poll_read_from_io",
            "<tokio::net::tcp::stream::TcpStream as tokio::io::async_read::AsyncRead>::poll_read",
            "tokio::io::poll_evented::PollEvented<E>::poll_read",
        ],
        libc: Some("__libc_recv"),
    },
];

const RUST_LIBS: &[Library] = &[
    Library {
        fns: &[
            "serde_json::de::from_slice",
            "serde_json::de::from_trait",
            "<&mut serde_json::de::Deserializer<R> as serde::de::Deserializer>::deserialize_struct",
            "<{svc}::model::__FieldVisitor as serde::de::Visitor>::visit_map",
            "<serde_json::de::MapAccess<R> as serde::de::MapAccess>::next_key_seed",
            "<serde_json::de::MapAccess<R> as serde::de::MapAccess>::next_value_seed",
            "<&mut serde_json::de::Deserializer<R> as serde::de::Deserializer>::deserialize_seq",
            "<serde_json::de::SeqAccess<R> as serde::de::SeqAccess>::next_element_seed",
            "<&mut serde_json::de::Deserializer<R> as serde::de::Deserializer>::deserialize_string",
            "serde_json::read::SliceRead::parse_str",
            "serde_json::read::parse_escape",
            "serde_json::de::Deserializer<R>::parse_integer",
            "core::str::converts::from_utf8",
        ],
        recursive: true,
        libc: &["malloc", "__memmove_avx_unaligned_erms"],
    },
    Library {
        fns: &[
            "serde_json::ser::to_vec",
            "<{svc}::model::Response as serde::ser::Serialize>::serialize",
            "<serde_json::ser::Compound<W,F> as serde::ser::SerializeStruct>::serialize_field",
            "<serde_json::ser::Compound<W,F> as serde::ser::SerializeSeq>::serialize_element",
            "serde_json::ser::format_escaped_str",
            "serde_json::ser::format_escaped_str_contents",
            "itoa::Buffer::format",
            "ryu::pretty::format64",
            "alloc::raw_vec::RawVec<T,A>::reserve::do_reserve_and_handle",
            "alloc::raw_vec::finish_grow",
        ],
        recursive: true,
        libc: &["realloc", "__memmove_avx_unaligned_erms"],
    },
    Library {
        fns: &[
            "tokio_postgres::client::Client::query::{{closure}}",
            "tokio_postgres::query::query::{{closure}}",
            "tokio_postgres::query::start::{{closure}}",
            "tokio_postgres::client::InnerClient::send",
            "futures_channel::mpsc::UnboundedSender<T>::unbounded_send",
            "<tokio_postgres::connection::Connection<S,T> as core::future::future::Future>::poll",
            "tokio_postgres::connection::Connection<S,T>::poll_read",
            "<tokio_util::codec::framed_impl::FramedImpl<T,U,R> as futures_core::stream::Stream>::poll_next",
            "<tokio_postgres::codec::PostgresCodec as tokio_util::codec::decoder::Decoder>::decode",
            "postgres_protocol::message::backend::Message::parse",
            "tokio_postgres::row::Row::try_get",
            "<alloc::string::String as postgres_types::FromSql>::from_sql",
            "bytes::bytes_mut::BytesMut::reserve_inner",
        ],
        recursive: false,
        libc: &["__libc_recv", "__libc_write", "malloc"],
    },
    Library {
        fns: &[
            "<tokio_rustls::server::TlsStream<IO> as tokio::io::async_write::AsyncWrite>::poll_write",
            "rustls::conn::ConnectionCommon<Data>::write_plaintext",
            "rustls::common_state::CommonState::send_appdata_encrypt",
            "rustls::common_state::CommonState::send_single_fragment",
            "rustls::record_layer::RecordLayer::encrypt_outgoing",
            "<rustls::crypto::ring::tls13::Tls13MessageEncrypter as rustls::crypto::cipher::MessageEncrypter>::encrypt",
            "ring::aead::aes_gcm::seal",
            "ring::aead::aes_gcm::seal_strided",
            "ring_core_0_17_14__aes_hw_ctr32_encrypt_blocks",
            "ring_core_0_17_14__gcm_ghash_clmul",
        ],
        recursive: false,
        libc: &["__libc_write", "__memmove_avx_unaligned_erms"],
    },
    Library {
        fns: &[
            "prost::message::Message::encode_to_vec",
            "<{svc}::pb::Reply as prost::message::Message>::encode_raw",
            "prost::encoding::message::encode",
            "prost::encoding::string::encode",
            "prost::encoding::encode_varint",
            "bytes::bytes_mut::BytesMut::extend_from_slice",
        ],
        recursive: true,
        libc: &["__memmove_avx_unaligned_erms", "realloc"],
    },
    Library {
        fns: &[
            "tracing::span::Span::in_scope",
            "<tracing_subscriber::layer::layered::Layered<L,S> as tracing_core::subscriber::Subscriber>::event",
            "<tracing_subscriber::fmt::fmt_layer::Layer<S,N,E,W> as tracing_subscriber::layer::Layer<S>>::on_event",
            "<tracing_subscriber::fmt::format::Format<tracing_subscriber::fmt::format::Full,T> as tracing_subscriber::fmt::format::FormatEvent<S,N>>::format_event",
            "core::fmt::write",
            "<&T as core::fmt::Display>::fmt",
            "core::fmt::Formatter::pad",
            "<std::io::stdio::Stdout as std::io::Write>::write_all",
        ],
        recursive: false,
        libc: &["__libc_write", "pthread_mutex_lock@@GLIBC_2.2.5"],
    },
    Library {
        fns: &[
            "hashbrown::map::HashMap<K,V,S,A>::insert",
            "hashbrown::raw::RawTable<T,A>::reserve_rehash",
            "core::hash::BuildHasher::hash_one",
            "<std::hash::random::DefaultHasher as core::hash::Hasher>::write",
            "core::hash::sip::Hasher<S>::write",
            "alloc::raw_vec::RawVec<T,A>::grow_one",
            "alloc::raw_vec::finish_grow",
        ],
        recursive: false,
        libc: &["malloc", "_int_malloc", "cfree@GLIBC_2.2.5"],
    },
    Library {
        fns: &[
            "regex::regex::string::Regex::is_match",
            "regex_automata::meta::regex::Regex::search_half",
            "<regex_automata::meta::strategy::Core as regex_automata::meta::strategy::Strategy>::search_half",
            "regex_automata::hybrid::regex::Regex::try_search",
            "regex_automata::hybrid::search::find_fwd",
            "regex_automata::hybrid::dfa::Lazy::cache_next_state",
            "memchr::arch::x86_64::avx2::memchr::One::find_raw",
        ],
        recursive: false,
        libc: &["malloc"],
    },
    Library {
        fns: &[
            "alloc::fmt::format::format_inner",
            "core::fmt::write",
            "<alloc::string::String as core::fmt::Write>::write_str",
            "alloc::raw_vec::RawVec<T,A>::reserve::do_reserve_and_handle",
            "alloc::raw_vec::finish_grow",
        ],
        recursive: false,
        libc: &["realloc", "_int_malloc"],
    },
    Library {
        fns: &[
            "core::ptr::drop_in_place<{svc}::model::Order>",
            "core::ptr::drop_in_place<alloc::vec::Vec<{svc}::model::LineItem>>",
            "core::ptr::drop_in_place<alloc::string::String>",
            "<alloc::vec::Vec<T,A> as core::ops::drop::Drop>::drop",
        ],
        recursive: false,
        libc: &["cfree@GLIBC_2.2.5", "_int_free"],
    },
];

pub const RUST: LangModel = LangModel {
    lang: Lang::Rust,
    threads: RUST_THREADS,
    framework: &[
        "<hyper_util::server::conn::auto::UpgradeableConnection<I,S,E> as core::future::future::Future>::poll",
        "hyper::proto::h1::dispatch::Dispatcher<D,Bs,I,T>::poll_catch",
        "hyper::proto::h1::dispatch::Dispatcher<D,Bs,I,T>::poll_inner",
        "hyper::proto::h1::dispatch::Dispatcher<D,Bs,I,T>::poll_read",
        "<hyper::proto::h1::dispatch::Server<S,hyper::body::incoming::Incoming> as hyper::proto::h1::dispatch::Dispatch>::poll_msg",
        "<tower_http::trace::service::Trace<S,M> as tower_service::Service<http::request::Request<B>>>::call",
        "<axum::routing::Router as tower_service::Service<http::request::Request<B>>>::call",
        "axum::routing::path_router::PathRouter<S,_>::call_with_state",
        "<axum::handler::HandlerService<H,T,S> as tower_service::Service<http::request::Request<B>>>::call",
        "<F as axum::handler::Handler<(M,T1,T2),S>>::call::{{closure}}",
    ],
    sides: RUST_SIDES,
    libs: RUST_LIBS,
    libc: LIBC,
    modules: &[
        "handlers", "db", "cache", "auth", "pricing", "inventory", "model", "render", "client",
        "metrics", "config", "queue", "validation", "session", "codec", "storage", "search",
        "rules", "events", "rate_limit",
    ],
    types: &[
        "Repository", "Service", "Client", "Pool", "Cache", "Validator", "Encoder", "Decoder",
        "Engine", "Index", "Store", "Worker", "Builder", "Registry", "Limiter", "Ledger",
    ],
    methods: &[
        "get", "fetch_all", "insert", "update", "validate", "apply", "compute_total", "lookup",
        "encode", "decode", "load", "refresh", "evaluate", "merge", "resolve", "serialize_row",
        "check_permissions", "build_query", "flush", "process_batch", "score", "normalize",
    ],
    exe: "/usr/local/bin/{proc}",
};

const CPP_THREADS: &[ThreadKind] = &[
    ThreadKind {
        name: "grpcpp_sync_ser",
        prefix: &[
            "clone3",
            "start_thread",
            "grpc_core::(anonymous namespace)::ThreadInternalsPosix::ThreadInternalsPosix(char const*, void (*)(void*), void*, bool*, grpc_core::Thread::Options const&)::{lambda(void*)#1}::_FUN(void*)",
            "grpc::ThreadManager::WorkerThread::Run()",
            "grpc::ThreadManager::MainWorkLoop()",
        ],
        serves: true,
        share: 0.7,
        count: (2, 4),
    },
    ThreadKind {
        name: "rocksdb:low",
        prefix: &[
            "clone3",
            "start_thread",
            "execute_native_thread_routine",
            "rocksdb::ThreadPoolImpl::Impl::BGThreadWrapper(void*)",
            "rocksdb::ThreadPoolImpl::Impl::BGThread(unsigned long)",
            "rocksdb::DBImpl::BGWorkCompaction(void*)",
            "rocksdb::DBImpl::BackgroundCallCompaction(rocksdb::PrepickedCompaction*, rocksdb::Env::Priority)",
            "rocksdb::DBImpl::BackgroundCompaction(bool*, rocksdb::JobContext*, rocksdb::LogBuffer*, rocksdb::PrepickedCompaction*, rocksdb::Env::Priority)",
            "rocksdb::CompactionJob::Run()",
            "rocksdb::CompactionJob::ProcessKeyValueCompaction(rocksdb::CompactionJob::SubcompactionState*)",
        ],
        serves: false,
        share: 0.25,
        count: (1, 2),
    },
    ThreadKind {
        name: "{proc}",
        prefix: &[
            "_start",
            "__libc_start_main@@GLIBC_2.34",
            "__libc_start_call_main",
            "main",
            "{ns}::Server::Run()",
            "grpc::Server::Wait()",
        ],
        serves: false,
        share: 0.05,
        count: (1, 1),
    },
];

const CPP_SIDES: &[Side] = &[
    Side {
        at: "grpc::ThreadManager::MainWorkLoop()",
        chain: &[
            "grpc::Server::SyncRequestThreadManager::PollForWork(void**, bool*)",
            "grpc::CompletionQueue::AsyncNextInternal(void**, bool*, gpr_timespec)",
            "cq_next(grpc_completion_queue*, gpr_timespec, void*)",
            "grpc_pollset_work(grpc_pollset*, grpc_pollset_worker**, grpc_core::Timestamp)",
            "pollset_work(grpc_pollset*, grpc_pollset_worker**, grpc_core::Timestamp)",
        ],
        libc: Some("epoll_wait"),
    },
    Side {
        at: "grpc::Server::SyncRequest::ContinueRunAfterInterception()",
        chain: &[
            "grpc::internal::CallOpSet<grpc::internal::CallOpSendInitialMetadata, grpc::internal::CallOpSendMessage, grpc::internal::CallOpServerSendStatus, grpc::internal::CallNoOp<4>, grpc::internal::CallNoOp<5>, grpc::internal::CallNoOp<6> >::ContinueFillOpsAfterInterception()",
            "grpc_call_start_batch",
            "grpc_core::FilterStackCall::StartBatch(grpc_op const*, unsigned long, void*, bool)",
            "grpc_core::ExecCtx::Flush()",
            "grpc_chttp2_end_write(grpc_chttp2_transport*, absl::lts_20240722::Status)",
            "tcp_flush(grpc_tcp*, absl::lts_20240722::Status*)",
        ],
        libc: Some("__libc_write"),
    },
];

const CPP_LIBS: &[Library] = &[
    Library {
        fns: &[
            "google::protobuf::MessageLite::ParseFromArray(void const*, int)",
            "google::protobuf::internal::TcParser::ParseLoop(google::protobuf::MessageLite*, char const*, google::protobuf::internal::ParseContext*, google::protobuf::internal::TcParseTableBase const*)",
            "google::protobuf::internal::TcParser::FastMtS1(google::protobuf::MessageLite*, char const*, google::protobuf::internal::ParseContext*, google::protobuf::internal::TcFieldData, google::protobuf::internal::TcParseTableBase const*, unsigned long)",
            "google::protobuf::internal::TcParser::FastUS1(google::protobuf::MessageLite*, char const*, google::protobuf::internal::ParseContext*, google::protobuf::internal::TcFieldData, google::protobuf::internal::TcParseTableBase const*, unsigned long)",
            "google::protobuf::internal::ArenaStringPtr::Set(std::basic_string_view<char, std::char_traits<char> >, google::protobuf::Arena*)",
            "google::protobuf::internal::VerifyUTF8(std::basic_string_view<char, std::char_traits<char> >, char const*)",
            "utf8_range::IsStructurallyValid(std::basic_string_view<char, std::char_traits<char> >)",
        ],
        recursive: true,
        libc: &["malloc", "__memmove_avx_unaligned_erms"],
    },
    Library {
        fns: &[
            "google::protobuf::MessageLite::SerializeToString(std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> >*) const",
            "google::protobuf::MessageLite::AppendPartialToString(std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> >*) const",
            "{ns}::Record::_InternalSerialize(unsigned char*, google::protobuf::io::EpsCopyOutputStream*) const",
            "google::protobuf::io::EpsCopyOutputStream::WriteStringOutline(unsigned int, std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> > const&, unsigned char*)",
            "{ns}::Record::ByteSizeLong() const",
        ],
        recursive: true,
        libc: &["__memmove_avx_unaligned_erms", "realloc"],
    },
    Library {
        fns: &[
            "rocksdb::DBImpl::Get(rocksdb::ReadOptions const&, rocksdb::ColumnFamilyHandle*, rocksdb::Slice const&, rocksdb::PinnableSlice*, std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> >*)",
            "rocksdb::DBImpl::GetImpl(rocksdb::ReadOptions const&, rocksdb::Slice const&, rocksdb::DBImpl::GetImplOptions&)",
            "rocksdb::Version::Get(rocksdb::ReadOptions const&, rocksdb::LookupKey const&, rocksdb::PinnableSlice*, rocksdb::PinnableWideColumns*, std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> >*, rocksdb::Status*, rocksdb::MergeContext*, unsigned long*, rocksdb::PinnedIteratorsManager*, bool*, bool*, unsigned long*, rocksdb::ReadCallback*, bool*, bool)",
            "rocksdb::TableCache::Get(rocksdb::ReadOptions const&, rocksdb::InternalKeyComparator const&, rocksdb::FileMetaData const&, rocksdb::Slice const&, rocksdb::GetContext*, rocksdb::MutableCFOptions const&, rocksdb::HistogramImpl*, bool, int, unsigned long)",
            "_ZN7rocksdb16BlockBasedTable3GetERKNS_11ReadOptionsERKNS_5SliceEPNS_10GetContextEPKNS_14SliceTransformEb",
            "rocksdb::BlockBasedTable::NewDataBlockIterator<rocksdb::DataBlockIter>(rocksdb::ReadOptions const&, rocksdb::BlockHandle const&, rocksdb::DataBlockIter*, rocksdb::BlockType, rocksdb::GetContext*, rocksdb::BlockCacheLookupContext*, rocksdb::FilePrefetchBuffer*, bool, bool, rocksdb::Status&, bool) const",
            "rocksdb::DataBlockIter::SeekForGetImpl(rocksdb::Slice const&)",
            "rocksdb::InternalKeyComparator::Compare(rocksdb::Slice const&, rocksdb::Slice const&) const",
            "snappy::RawUncompress(char const*, unsigned long, char*)",
        ],
        recursive: false,
        libc: &["__libc_pread64", "__memcmp_avx2_movbe", "malloc"],
    },
    Library {
        fns: &[
            "rocksdb::CompactionIterator::Next()",
            "rocksdb::MergingIterator::Next()",
            "rocksdb::BlockBasedTableIterator::Next()",
            "rocksdb::DataBlockIter::NextImpl()",
            "rocksdb::BlockBasedTableBuilder::Add(rocksdb::Slice const&, rocksdb::Slice const&)",
            "rocksdb::BlockBuilder::Add(rocksdb::Slice const&, rocksdb::Slice const&, rocksdb::Slice const*)",
            "rocksdb::crc32c::ExtendImpl<&rocksdb::crc32c::Fast_CRC32>(unsigned int, char const*, unsigned long)",
            "snappy::Compress(snappy::Source*, snappy::Sink*)",
            "snappy::internal::CompressFragment(char const*, unsigned long, char*, unsigned short*, int)",
        ],
        recursive: false,
        libc: &["__memmove_avx_unaligned_erms", "__libc_pread64"],
    },
    Library {
        fns: &[
            "std::_Hashtable<std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> >, std::pair<std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> > const, {ns}::Entry>, std::allocator<std::pair<std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> > const, {ns}::Entry> >, std::__detail::_Select1st, std::equal_to<std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> > >, std::hash<std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> > >, std::__detail::_Mod_range_hashing, std::__detail::_Default_ranged_hash, std::__detail::_Prime_rehash_policy, std::__detail::_Hashtable_traits<true, false, true> >::find(std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> > const&)",
            "std::_Hash_bytes(void const*, unsigned long, unsigned long)",
        ],
        recursive: false,
        libc: &["__memcmp_avx2_movbe"],
    },
    Library {
        fns: &[
            "void std::vector<{ns}::Entry, std::allocator<{ns}::Entry> >::_M_realloc_insert<{ns}::Entry const&>(__gnu_cxx::__normal_iterator<{ns}::Entry*, std::vector<{ns}::Entry, std::allocator<{ns}::Entry> > >, {ns}::Entry const&)",
            "operator new(unsigned long)",
        ],
        recursive: false,
        libc: &["malloc", "_int_malloc"],
    },
    Library {
        fns: &[
            "absl::lts_20240722::Mutex::Lock()",
            "absl::lts_20240722::Mutex::LockSlowWithDeadline(absl::lts_20240722::MuHowS const*, absl::lts_20240722::Condition const*, absl::lts_20240722::synchronization_internal::KernelTimeout, int)",
            "absl::lts_20240722::Mutex::LockSlowLoop(absl::lts_20240722::SynchWaitParams*, int)",
            "AbslInternalPerThreadSemWait_lts_20240722",
            "absl::lts_20240722::synchronization_internal::FutexWaiter::Wait(absl::lts_20240722::synchronization_internal::KernelTimeout)",
        ],
        recursive: false,
        libc: &["__futex_abstimed_wait_common"],
    },
    Library {
        fns: &[
            "SSL_write",
            "ssl3_write_bytes",
            "tls_write_records_default",
            "tls13_cipher",
            "EVP_EncryptUpdate",
            "aes_gcm_cipher",
            "aesni_gcm_encrypt",
        ],
        recursive: false,
        libc: &["__libc_write"],
    },
    Library {
        fns: &[
            "_ZN6spdlog6logger4log_IJRKNSt7__cxx1112basic_stringIcSt11char_traitsIcESaIcEEEEEEvNS_10source_locENS_5level10level_enumEN3fmt3v1019basic_string_viewIcEEDpOT_",
            "spdlog::details::full_formatter::format(spdlog::details::log_msg const&, tm const&, fmt::v10::basic_memory_buffer<char, 250ul, std::allocator<char> >&)",
            "fmt::v10::detail::vformat_to<char>(fmt::v10::detail::buffer<char>&, fmt::v10::basic_string_view<char>, fmt::v10::detail::vformat_args<char>::type, fmt::v10::detail::locale_ref)",
            "spdlog::sinks::ansicolor_sink<spdlog::details::console_mutex>::log(spdlog::details::log_msg const&)",
            "_IO_fwrite",
        ],
        recursive: false,
        libc: &["__libc_write", "__strlen_avx2"],
    },
];

pub const CPP: LangModel = LangModel {
    lang: Lang::Cpp,
    threads: CPP_THREADS,
    framework: &[
        "grpc::Server::SyncRequestThreadManager::DoWork(void*, bool, bool)",
        "grpc::Server::SyncRequest::ContinueRunAfterInterception()",
        "grpc::internal::RpcMethodHandler<{ns}::{Svc}::Service, {ns}::Request, {ns}::Reply, google::protobuf::MessageLite, google::protobuf::MessageLite>::RunHandler(grpc::internal::MethodHandler::HandlerParameter const&)",
        "grpc::Status grpc::internal::CatchingFunctionHandler<grpc::internal::RpcMethodHandler<{ns}::{Svc}::Service, {ns}::Request, {ns}::Reply, google::protobuf::MessageLite, google::protobuf::MessageLite>::RunHandler(grpc::internal::MethodHandler::HandlerParameter const&)::{lambda()#1}>(grpc::internal::RpcMethodHandler<{ns}::{Svc}::Service, {ns}::Request, {ns}::Reply, google::protobuf::MessageLite, google::protobuf::MessageLite>::RunHandler(grpc::internal::MethodHandler::HandlerParameter const&)::{lambda()#1}&&)",
        "std::_Function_handler<grpc::Status ({ns}::{Svc}::Service*, grpc::ServerContext*, {ns}::Request const*, {ns}::Reply*), std::_Mem_fn<grpc::Status ({ns}::{Svc}::Service::*)(grpc::ServerContext*, {ns}::Request const*, {ns}::Reply*)> >::_M_invoke(std::_Any_data const&, {ns}::{Svc}::Service*&&, grpc::ServerContext*&&, {ns}::Request const*&&, {ns}::Reply*&&)",
    ],
    sides: CPP_SIDES,
    libs: CPP_LIBS,
    libc: LIBC,
    modules: &[
        "storage", "index", "query", "planner", "exec", "cache", "net", "codec", "auth", "stats",
        "wal", "txn", "schema", "replication",
    ],
    types: &[
        "PageCache", "BTreeIndex", "QueryPlanner", "Executor", "RowCodec", "SessionManager",
        "Tablet", "Scanner", "Aggregator", "Filter", "Partitioner", "Compressor", "LockManager",
    ],
    methods: &[
        "Lookup(unsigned long, bool)",
        "Scan(std::basic_string_view<char, std::char_traits<char> >)",
        "Apply(std::vector<{ns}::Entry, std::allocator<{ns}::Entry> > const&)",
        "Encode({ns}::Row const&, std::__cxx11::basic_string<char, std::char_traits<char>, std::allocator<char> >*)",
        "Decode(char const*, unsigned long)",
        "Next()",
        "Seek({ns}::Key const&)",
        "Evaluate({ns}::Expr const*) const",
        "Merge({ns}::Batch&&)",
        "Flush()",
        "Compact(int)",
        "Acquire({ns}::LockMode)",
        "Estimate() const",
        "Visit({ns}::Node*)",
    ],
    exe: "/opt/{proc}/bin/{proc}",
};

const GO_THREADS: &[ThreadKind] = &[
    ThreadKind {
        name: "{proc}",
        prefix: &["runtime.goexit"],
        serves: true,
        share: 0.75,
        count: (2, 5),
    },
    ThreadKind {
        name: "{proc}",
        prefix: &[
            "runtime.goexit",
            "runtime.gcBgMarkWorker",
            "runtime.systemstack",
            "runtime.gcBgMarkWorker.func2",
            "runtime.gcDrain",
        ],
        serves: false,
        share: 0.15,
        count: (1, 2),
    },
    ThreadKind {
        name: "{proc}",
        prefix: &[
            "runtime.mstart",
            "runtime.mstart0",
            "runtime.mstart1",
            "runtime.schedule",
            "runtime.findRunnable",
        ],
        serves: false,
        share: 0.10,
        count: (1, 2),
    },
];

const GO_SIDES: &[Side] = &[
    Side {
        at: "net/http.(*conn).serve",
        chain: &[
            "net/http.(*conn).readRequest",
            "net/http.readRequest",
            "net/textproto.(*Reader).ReadMIMEHeader",
            "net/textproto.readMIMEHeader",
            "net/textproto.canonicalMIMEHeaderKey",
        ],
        libc: Some("runtime.mallocgc"),
    },
    Side {
        at: "net/http.(*conn).serve",
        chain: &[
            "net/http.(*response).finishRequest",
            "bufio.(*Writer).Flush",
            "net/http.checkConnErrorWriter.Write",
            "net.(*conn).Write",
            "net.(*netFD).Write",
            "internal/poll.(*FD).Write",
            "syscall.write",
            "syscall.Syscall",
        ],
        libc: Some("internal/runtime/syscall.Syscall6"),
    },
];

const GO_LIBS: &[Library] = &[
    Library {
        fns: &[
            "encoding/json.Unmarshal",
            "encoding/json.(*decodeState).unmarshal",
            "encoding/json.(*decodeState).value",
            "encoding/json.(*decodeState).object",
            "encoding/json.(*decodeState).array",
            "encoding/json.(*decodeState).literalStore",
            "encoding/json.(*decodeState).rescanLiteral",
            "encoding/json.checkValid",
            "encoding/json.stateInString",
            "reflect.Value.SetString",
        ],
        recursive: true,
        libc: &["runtime.mallocgc", "runtime.memmove"],
    },
    Library {
        fns: &[
            "encoding/json.Marshal",
            "encoding/json.(*encodeState).marshal",
            "encoding/json.(*encodeState).reflectValue",
            "encoding/json.structEncoder.encode",
            "encoding/json.sliceEncoder.encode",
            "encoding/json.arrayEncoder.encode",
            "encoding/json.ptrEncoder.encode",
            "encoding/json.stringEncoder",
            "encoding/json.appendString[...]",
            "strconv.AppendInt",
        ],
        recursive: true,
        libc: &["runtime.memmove", "runtime.mallocgc"],
    },
    Library {
        fns: &[
            "database/sql.(*DB).QueryContext",
            "database/sql.(*DB).query",
            "database/sql.(*DB).queryDC",
            "database/sql.ctxDriverQuery",
            "github.com/jackc/pgx/v5/stdlib.(*Conn).QueryContext",
            "github.com/jackc/pgx/v5.(*Conn).Query",
            "github.com/jackc/pgx/v5/pgconn.(*PgConn).ExecParams",
            "github.com/jackc/pgx/v5/pgconn.(*ResultReader).readUntilRowDescription",
            "github.com/jackc/pgx/v5/pgconn.(*PgConn).receiveMessage",
            "github.com/jackc/pgx/v5/pgproto3.(*Frontend).Receive",
            "github.com/jackc/pgx/v5/pgconn/internal/bgreader.(*BGReader).Read",
            "net.(*conn).Read",
            "internal/poll.(*FD).Read",
            "syscall.read",
        ],
        recursive: false,
        libc: &["internal/runtime/syscall.Syscall6", "runtime.mallocgc"],
    },
    Library {
        fns: &[
            "runtime.newobject",
            "runtime.mallocgc",
            "runtime.mallocgcSmallScanNoHeader",
            "runtime.(*mcache).nextFree",
            "runtime.(*mcache).refill",
            "runtime.(*mcentral).cacheSpan",
            "runtime.(*mcentral).grow",
            "runtime.(*mheap).alloc",
            "runtime.(*mheap).allocSpan",
        ],
        recursive: false,
        libc: &["runtime.memclrNoHeapPointers", "runtime.futex"],
    },
    Library {
        fns: &[
            "runtime.growslice",
            "runtime.mallocgc",
            "runtime.mallocgcSmallNoscan",
        ],
        recursive: false,
        libc: &["runtime.memmove", "runtime.memclrNoHeapPointers"],
    },
    Library {
        fns: &[
            "fmt.Sprintf",
            "fmt.(*pp).doPrintf",
            "fmt.(*pp).printArg",
            "fmt.(*pp).handleMethods",
            "fmt.(*fmt).fmtInteger",
            "fmt.(*buffer).writeString",
        ],
        recursive: false,
        libc: &["runtime.memmove", "runtime.mallocgc"],
    },
    Library {
        fns: &[
            "crypto/tls.(*Conn).Write",
            "crypto/tls.(*Conn).writeRecordLocked",
            "crypto/tls.(*halfConn).encrypt",
            "crypto/tls.(*xorNonceAEAD).Seal",
            "crypto/internal/fips140/aes/gcm.(*GCMForTLS13).Seal",
            "crypto/internal/fips140/aes/gcm.seal",
            "crypto/internal/fips140/aes/gcm.gcmAesEnc",
        ],
        recursive: false,
        libc: &["internal/runtime/syscall.Syscall6"],
    },
    Library {
        fns: &[
            "google.golang.org/grpc/encoding/proto.(*codecV2).Unmarshal",
            "google.golang.org/protobuf/proto.UnmarshalOptions.unmarshal",
            "google.golang.org/protobuf/internal/impl.(*MessageInfo).unmarshal",
            "google.golang.org/protobuf/internal/impl.(*MessageInfo).unmarshalPointer",
            "google.golang.org/protobuf/internal/impl.consumeMessageInfo",
            "google.golang.org/protobuf/internal/impl.consumeStringValidateUTF8",
        ],
        recursive: true,
        libc: &["runtime.mallocgc", "runtime.memmove"],
    },
    Library {
        fns: &[
            "sync.(*Mutex).Lock",
            "sync.(*Mutex).lockSlow",
            "sync.runtime_SemacquireMutex",
            "runtime.semacquire1",
            "runtime.gopark",
            "runtime.mcall",
            "runtime.park_m",
            "runtime.schedule",
        ],
        recursive: false,
        libc: &["runtime.futex"],
    },
    Library {
        fns: &[
            "go.uber.org/zap.(*Logger).Info",
            "go.uber.org/zap/zapcore.(*CheckedEntry).Write",
            "go.uber.org/zap/zapcore.(*ioCore).Write",
            "go.uber.org/zap/zapcore.(*jsonEncoder).EncodeEntry",
            "go.uber.org/zap/zapcore.(*jsonEncoder).AppendString",
            "go.uber.org/zap/zapcore.(*jsonEncoder).safeAddString",
            "unicode/utf8.DecodeRuneInString",
        ],
        recursive: false,
        libc: &["runtime.memmove", "internal/runtime/syscall.Syscall6"],
    },
    Library {
        fns: &[
            "runtime.scanobject",
            "runtime.greyobject",
            "runtime.findObject",
            "runtime.(*gcWork).tryGet",
            "runtime.markroot",
            "runtime.markrootBlock",
            "runtime.scanblock",
            "runtime.(*mspan).typePointersOfUnchecked",
        ],
        recursive: false,
        libc: &["runtime.memclrNoHeapPointers"],
    },
    Library {
        fns: &[
            "runtime.netpoll",
            "runtime.stealWork",
            "runtime.runqsteal",
            "runtime.runqgrab",
            "runtime.checkTimers",
            "runtime.(*timers).run",
            "runtime.notesleep",
        ],
        recursive: false,
        libc: &["runtime.epollwait", "runtime.futex"],
    },
];

pub const GO: LangModel = LangModel {
    lang: Lang::Go,
    threads: GO_THREADS,
    framework: &[
        "net/http.(*conn).serve",
        "net/http.serverHandler.ServeHTTP",
        "go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp.(*middleware).serveHTTP",
        "net/http.HandlerFunc.ServeHTTP",
        "github.com/go-chi/chi/v5.(*Mux).ServeHTTP",
        "github.com/go-chi/chi/v5.(*Mux).routeHTTP",
    ],
    sides: GO_SIDES,
    libs: GO_LIBS,
    libc: GO_RUNTIME_LEAVES,
    modules: &[
        "handlers",
        "store",
        "cache",
        "auth",
        "pricing",
        "billing",
        "events",
        "model",
        "queue",
        "render",
        "client",
        "ratelimit",
        "search",
        "rules",
        "export",
    ],
    types: &[
        "Server", "Store", "Client", "Repo", "Cache", "Service", "Worker", "Encoder", "Index",
        "Pool", "Limiter", "Ledger", "Resolver",
    ],
    methods: &[
        "Get",
        "List",
        "Create",
        "Update",
        "Validate",
        "Apply",
        "ComputeTotal",
        "Lookup",
        "Encode",
        "Decode",
        "Load",
        "Refresh",
        "Evaluate",
        "Merge",
        "Resolve",
        "scanRow",
        "buildQuery",
        "Flush",
        "ProcessBatch",
        "Score",
        "normalize",
        "checkAccess",
    ],
    exe: "/app/{proc}",
};

const PY_THREADS: &[ThreadKind] = &[
    ThreadKind {
        name: "gunicorn",
        prefix: &[
            "_start",
            "__libc_start_main@@GLIBC_2.34",
            "__libc_start_call_main",
            "Py_BytesMain",
            "Py_RunMain",
            "pymain_run_python",
            "_PyRun_AnyFileObject",
            "_PyRun_SimpleFileObject",
            "run_mod",
            "run_eval_code_obj",
            "PyEval_EvalCode",
            "<module>",
            "gunicorn.app.wsgiapp.run",
            "gunicorn.app.base.BaseApplication.run",
            "gunicorn.arbiter.Arbiter.run",
            "gunicorn.arbiter.Arbiter.manage_workers",
            "gunicorn.arbiter.Arbiter.spawn_workers",
            "gunicorn.arbiter.Arbiter.spawn_worker",
            "gunicorn.workers.base.Worker.init_process",
            "gunicorn.workers.sync.SyncWorker.run",
            "gunicorn.workers.sync.SyncWorker.run_for_one",
        ],
        serves: true,
        share: 0.9,
        count: (1, 3),
    },
    ThreadKind {
        name: "{proc}",
        prefix: &[
            "clone3",
            "start_thread",
            "pythread_wrapper",
            "thread_run",
            "_PyObject_Call",
            "_PyEval_EvalFrameDefault",
            "threading.Thread._bootstrap",
            "threading.Thread._bootstrap_inner",
            "threading.Thread.run",
        ],
        serves: false,
        share: 0.1,
        count: (1, 1),
    },
];

const PY_SIDES: &[Side] = &[
    Side {
        at: "gunicorn.workers.sync.SyncWorker.run_for_one",
        chain: &[
            "gunicorn.workers.sync.SyncWorker.wait",
            "selectors.EpollSelector.select",
            "select_epoll_poll",
        ],
        libc: Some("epoll_wait"),
    },
    Side {
        at: "django.core.handlers.base.BaseHandler._get_response",
        chain: &[
            "django.template.response.SimpleTemplateResponse.render",
            "django.template.backends.django.Template.render",
            "django.template.base.Template.render",
            "django.template.base.NodeList.render",
            "django.template.base.Node.render_annotated",
            "django.template.defaulttags.ForNode.render",
            "django.template.base.VariableNode.render",
            "django.template.base.FilterExpression.resolve",
            "django.template.base.Variable._resolve_lookup",
        ],
        libc: None,
    },
];

const PY_LIBS: &[Library] = &[
    Library {
        fns: &[
            "django.db.models.query.QuerySet.__iter__",
            "django.db.models.query.QuerySet._fetch_all",
            "django.db.models.query.ModelIterable.__iter__",
            "django.db.models.sql.compiler.SQLCompiler.execute_sql",
            "django.db.models.sql.compiler.SQLCompiler.as_sql",
            "django.db.backends.utils.CursorWrapper.execute",
            "django.db.backends.utils.CursorWrapper._execute_with_wrappers",
            "django.db.backends.utils.CursorWrapper._execute",
            "psycopg2_cursor_execute",
            "pq_execute",
            "PQgetResult",
            "pqWait",
            "pqSocketCheck",
        ],
        recursive: false,
        libc: &["__libc_recv", "__libc_write"],
    },
    Library {
        fns: &[
            "django.db.models.base.Model.from_db",
            "django.db.models.base.Model.__init__",
            "django.db.models.fields.Field.get_default",
            "django.db.models.fields.DateTimeField.to_python",
            "_PyObject_Call",
            "PyDict_SetItem",
            "insertdict",
            "dictresize",
        ],
        recursive: false,
        libc: &["malloc"],
    },
    Library {
        fns: &[
            "json.dumps",
            "json.encoder.JSONEncoder.encode",
            "json.encoder.JSONEncoder.iterencode",
            "encoder_call",
            "encoder_listencode_obj",
            "encoder_listencode_dict",
            "encoder_listencode_list",
            "PyUnicode_New",
        ],
        recursive: true,
        libc: &["malloc", "__memmove_avx_unaligned_erms"],
    },
    Library {
        fns: &[
            "_PyEval_EvalFrameDefault",
            "_PyFunction_Vectorcall",
            "_PyObject_MakeTpCall",
            "method_vectorcall_O",
            "_PyObject_Malloc",
            "pymalloc_alloc",
            "_PyObject_GC_Alloc",
            "gc_collect_main",
            "deduce_unreachable",
            "visit_reachable",
        ],
        recursive: true,
        libc: &["malloc", "__memset_avx2_unaligned_erms"],
    },
    Library {
        fns: &[
            "_Py_Dealloc",
            "subtype_dealloc",
            "dict_dealloc",
            "list_dealloc",
            "PyObject_Free",
        ],
        recursive: true,
        libc: &["cfree@GLIBC_2.2.5"],
    },
    Library {
        fns: &[
            "re.Pattern.match",
            "_sre_SRE_Pattern_match",
            "sre_ucs1_match",
            "sre_ucs1_search",
        ],
        recursive: false,
        libc: &[],
    },
    Library {
        fns: &[
            "requests.api.post",
            "requests.sessions.Session.request",
            "requests.sessions.Session.send",
            "requests.adapters.HTTPAdapter.send",
            "urllib3.connectionpool.HTTPConnectionPool.urlopen",
            "urllib3.connectionpool.HTTPConnectionPool._make_request",
            "http.client.HTTPConnection.getresponse",
            "http.client.HTTPResponse.begin",
            "http.client.HTTPResponse._read_status",
            "socket.SocketIO.readinto",
            "sock_recv_into",
        ],
        recursive: false,
        libc: &["__libc_recv"],
    },
    Library {
        fns: &[
            "logging.Logger.info",
            "logging.Logger._log",
            "logging.Logger.handle",
            "logging.Handler.handle",
            "logging.StreamHandler.emit",
            "logging.Formatter.format",
            "logging.Formatter.formatTime",
            "time.strftime",
        ],
        recursive: false,
        libc: &["__libc_write"],
    },
];

pub const PYTHON: LangModel = LangModel {
    lang: Lang::Python,
    threads: PY_THREADS,
    framework: &[
        "gunicorn.workers.sync.SyncWorker.accept",
        "gunicorn.workers.sync.SyncWorker.handle",
        "gunicorn.workers.sync.SyncWorker.handle_request",
        "django.core.handlers.wsgi.WSGIHandler.__call__",
        "django.core.handlers.base.BaseHandler.get_response",
        "django.core.handlers.exception.convert_exception_to_response.<locals>.inner",
        "django.utils.deprecation.MiddlewareMixin.__call__",
        "django.core.handlers.exception.convert_exception_to_response.<locals>.inner",
        "django.core.handlers.base.BaseHandler._get_response",
        "django.views.generic.base.View.as_view.<locals>.view",
        "django.views.generic.base.View.dispatch",
    ],
    sides: PY_SIDES,
    libs: PY_LIBS,
    libc: LIBC,
    modules: &[
        "views",
        "serializers",
        "models",
        "services",
        "tasks",
        "permissions",
        "utils",
        "pricing",
        "search",
        "reports",
        "forms",
        "signals",
    ],
    types: &[
        "OrderView",
        "CartService",
        "ReportBuilder",
        "UserSerializer",
        "PriceCalculator",
        "SearchIndex",
        "Exporter",
        "TaskRunner",
        "FeedRanker",
        "Notifier",
    ],
    methods: &[
        "get",
        "post",
        "list",
        "create",
        "validate",
        "to_representation",
        "compute",
        "build",
        "render_rows",
        "score",
        "apply_discounts",
        "fetch_related",
        "_prepare",
        "run",
        "flush",
    ],
    exe: "/usr/bin/python3.11",
};

pub fn model(lang: Lang) -> &'static LangModel {
    match lang {
        Lang::Rust => &RUST,
        Lang::Cpp => &CPP,
        Lang::Go => &GO,
        Lang::Python => &PYTHON,
    }
}

pub const SERVICE_NAMES: &[&str] = &[
    "checkout",
    "payments",
    "cart",
    "catalog",
    "search",
    "recommendations",
    "inventory",
    "shipping",
    "auth",
    "users",
    "notifications",
    "email-sender",
    "pricing",
    "orders",
    "gateway",
    "ledger",
    "fraud-detector",
    "image-resizer",
    "reviews",
    "ads",
    "analytics-ingest",
    "session-store",
    "feature-flags",
    "config-server",
    "rate-limiter",
    "billing",
    "invoicing",
    "tax",
    "currency",
    "geo",
    "map-tiles",
    "chat",
    "feed",
    "media-transcoder",
    "thumbnailer",
    "audit-log",
    "metrics-collector",
    "queue-worker",
    "scheduler",
    "report-builder",
    "exporter",
    "webhooks",
    "identity",
    "kyc",
    "loyalty",
    "coupons",
    "warehouse",
    "returns",
    "support-desk",
    "cms",
];
