//! Core modules under the core-module ABI (`wit/core-abi.md`): the host
//! imports they link against and the calls into their exports, with the
//! same state access, limits and lockdown as components.

use wasmtime::{AsContextMut, Caller, Extern, Instance, Linker, Memory, Module, TypedFunc};

use super::bindings;
use super::bindings::projector::projection::{log, state};
use super::core_abi::{self, CORE_ABI_VERSION};
use super::host::HostState;

/// The import module the host's functions live in.
const IMPORT_MODULE: &str = "projector";
const WASI_P1: &str = "wasi_snapshot_preview1";

/// Exports a core module needs, with their signatures, for messages.
const REQUIRED: &[(&str, &str)] = &[
    ("memory", "memory"),
    ("projector_abi_version", "() -> i32"),
    ("projector_alloc", "(i32) -> i32"),
    ("projector_describe", "() -> i64"),
    ("projector_handle", "(i32, i32) -> i64"),
    ("projector_query", "(i32, i32, i32, i32) -> i64"),
];

/// Whether `module` says it follows the core-module ABI.
pub(super) fn is_projection(module: &Module) -> bool {
    module.get_export("projector_abi_version").is_some()
}

/// What is wrong with a core module's imports and exports, if anything.
pub(super) fn check_shape(module: &Module) -> Result<(), String> {
    for (name, signature) in REQUIRED {
        if module.get_export(name).is_none() {
            return Err(format!(
                "core module lacks the export `{name}` ({signature}); see wit/core-abi.md"
            ));
        }
    }
    if module.get_export("_start").is_some() {
        return Err(
            "core module exports `_start` (a command); build a reactor/library (e.g. Go `-buildmode=c-shared`)"
                .into(),
        );
    }
    for import in module.imports() {
        if import.module() != IMPORT_MODULE && import.module() != WASI_P1 {
            return Err(format!(
                "core module imports `{}::{}`; only `{IMPORT_MODULE}` (wit/core-abi.md) and `{WASI_P1}` are provided",
                import.module(),
                import.name()
            ));
        }
    }
    Ok(())
}

fn memory(caller: &mut Caller<'_, HostState>) -> wasmtime::Result<Memory> {
    match caller.get_export("memory") {
        Some(Extern::Memory(memory)) => Ok(memory),
        _ => Err(wasmtime::Error::msg("core module exports no `memory`")),
    }
}

fn read(
    caller: &mut Caller<'_, HostState>,
    what: &str,
    ptr: i32,
    len: i32,
) -> wasmtime::Result<Vec<u8>> {
    let memory = memory(caller)?;
    let data = memory.data(&caller);
    let range = core_abi::checked_range(what, ptr as u32, len as u32, data.len())
        .map_err(wasmtime::Error::msg)?;
    Ok(data[range].to_vec())
}

/// Writes `answer` into the module's buffer if it fits (else keeps it for
/// the call that asks again with a bigger buffer); returns its length.
fn answer(
    caller: &mut Caller<'_, HostState>,
    request: Vec<u8>,
    answer: Vec<u8>,
    out_ptr: i32,
    out_cap: i32,
) -> wasmtime::Result<i64> {
    let len = answer.len();
    if len <= out_cap.max(0) as usize {
        let memory = memory(caller)?;
        memory
            .write(&mut *caller, out_ptr as u32 as usize, &answer)
            .map_err(|_| {
                wasmtime::Error::msg(format!(
                    "the output buffer at {out_ptr} of {out_cap} bytes lies outside the module's memory"
                ))
            })?;
    } else {
        caller.data_mut().core_pending = Some((request, answer));
    }
    Ok(len as i64)
}

/// The answer kept for `request` by an earlier call, if any.
fn pending(caller: &mut Caller<'_, HostState>, request: &[u8]) -> Option<Vec<u8>> {
    match caller.data_mut().core_pending.take() {
        Some((kept, answer)) if kept == request => Some(answer),
        _ => None,
    }
}

/// The host side of the ABI: WASI preview 1 and the `projector` imports.
pub(super) fn linker(engine: &wasmtime::Engine) -> wasmtime::Result<Linker<HostState>> {
    let mut linker = Linker::<HostState>::new(engine);
    wasmtime_wasi::p1::add_to_linker_sync(&mut linker, |state: &mut HostState| &mut state.wasi_p1)?;
    linker.func_wrap(
        IMPORT_MODULE,
        "state_get",
        |mut caller: Caller<'_, HostState>,
         key_ptr: i32,
         key_len: i32,
         out_ptr: i32,
         out_cap: i32|
         -> wasmtime::Result<i64> {
            let key = read(&mut caller, "state_get key", key_ptr, key_len)?;
            let mut request = b"g".to_vec();
            request.extend_from_slice(&key);
            let value = match pending(&mut caller, &request) {
                Some(value) => Some(value),
                None => state::Host::get(caller.data_mut(), key)?,
            };
            match value {
                None => Ok(-1),
                Some(value) => answer(&mut caller, request, value, out_ptr, out_cap),
            }
        },
    )?;
    linker.func_wrap(
        IMPORT_MODULE,
        "state_put",
        |mut caller: Caller<'_, HostState>,
         key_ptr: i32,
         key_len: i32,
         value_ptr: i32,
         value_len: i32|
         -> wasmtime::Result<()> {
            let key = read(&mut caller, "state_put key", key_ptr, key_len)?;
            let value = read(&mut caller, "state_put value", value_ptr, value_len)?;
            state::Host::put(caller.data_mut(), key, value)
        },
    )?;
    linker.func_wrap(
        IMPORT_MODULE,
        "state_delete",
        |mut caller: Caller<'_, HostState>, key_ptr: i32, key_len: i32| -> wasmtime::Result<()> {
            let key = read(&mut caller, "state_delete key", key_ptr, key_len)?;
            state::Host::delete(caller.data_mut(), key)
        },
    )?;
    linker.func_wrap(
        IMPORT_MODULE,
        "state_scan",
        |mut caller: Caller<'_, HostState>,
         prefix_ptr: i32,
         prefix_len: i32,
         after_ptr: i32,
         after_len: i32,
         limit: i32,
         out_ptr: i32,
         out_cap: i32|
         -> wasmtime::Result<i64> {
            let prefix = read(&mut caller, "state_scan prefix", prefix_ptr, prefix_len)?;
            let after = if after_len < 0 {
                None
            } else {
                Some(read(
                    &mut caller,
                    "state_scan start-after",
                    after_ptr,
                    after_len,
                )?)
            };
            let mut request = b"s".to_vec();
            for part in [Some(&prefix), after.as_ref()] {
                match part {
                    Some(bytes) => {
                        request.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
                        request.extend_from_slice(bytes);
                    }
                    None => request.extend_from_slice(&u32::MAX.to_le_bytes()),
                }
            }
            request.extend_from_slice(&limit.to_le_bytes());
            let encoded = match pending(&mut caller, &request) {
                Some(encoded) => encoded,
                None => {
                    let limit = u32::try_from(limit).unwrap_or(0);
                    let entries = state::Host::scan(caller.data_mut(), prefix, after, limit)?;
                    core_abi::encode_entries(&entries)
                }
            };
            answer(&mut caller, request, encoded, out_ptr, out_cap)
        },
    )?;
    linker.func_wrap(
        IMPORT_MODULE,
        "log",
        |mut caller: Caller<'_, HostState>,
         level: i32,
         ptr: i32,
         len: i32|
         -> wasmtime::Result<()> {
            let text = read(&mut caller, "log message", ptr, len)?;
            let level = match level {
                0 => log::Level::Trace,
                1 => log::Level::Debug,
                2 => log::Level::Info,
                3 => log::Level::Warn,
                _ => log::Level::Error,
            };
            log::Host::log(
                caller.data_mut(),
                level,
                String::from_utf8_lossy(&text).into_owned(),
            )
        },
    )?;
    Ok(linker)
}

/// The exports of one core-module instance.
pub(super) struct CoreCalls {
    memory: Memory,
    alloc: TypedFunc<i32, i32>,
    describe: TypedFunc<(), i64>,
    handle: TypedFunc<(i32, i32), i64>,
    query: TypedFunc<(i32, i32, i32, i32), i64>,
}

impl CoreCalls {
    /// Looks the exports up with their signatures, runs `_initialize` if
    /// the module has one, and checks the ABI version.
    pub(super) fn new(
        mut store: impl AsContextMut<Data = HostState>,
        instance: &Instance,
    ) -> wasmtime::Result<Self> {
        let mut store = store.as_context_mut();
        if let Some(init) = instance.get_func(&mut store, "_initialize") {
            init.typed::<(), ()>(&store)?.call(&mut store, ())?;
        }
        let version = instance
            .get_typed_func::<(), i32>(&mut store, "projector_abi_version")?
            .call(&mut store, ())?;
        if version != CORE_ABI_VERSION {
            return Err(wasmtime::Error::msg(format!(
                "core module implements ABI version {version}; this host implements version {CORE_ABI_VERSION}"
            )));
        }
        let memory = instance
            .get_memory(&mut store, "memory")
            .ok_or_else(|| wasmtime::Error::msg("core module exports no `memory`"))?;
        Ok(Self {
            memory,
            alloc: instance.get_typed_func(&mut store, "projector_alloc")?,
            describe: instance.get_typed_func(&mut store, "projector_describe")?,
            handle: instance.get_typed_func(&mut store, "projector_handle")?,
            query: instance.get_typed_func(&mut store, "projector_query")?,
        })
    }

    /// Copies `bytes` into a buffer the module allocates.
    fn place(
        &self,
        mut store: impl AsContextMut<Data = HostState>,
        bytes: &[u8],
    ) -> wasmtime::Result<(i32, i32)> {
        let len = i32::try_from(bytes.len())
            .map_err(|_| wasmtime::Error::msg("input over 2 GiB for a core module"))?;
        let ptr = self.alloc.call(&mut store, len)?;
        self.memory
            .write(&mut store, ptr as u32 as usize, bytes)
            .map_err(|_| {
                wasmtime::Error::msg(format!(
                    "`projector_alloc({len})` returned {ptr}, outside the module's memory"
                ))
            })?;
        Ok((ptr, len))
    }

    fn take(
        &self,
        store: impl AsContextMut<Data = HostState>,
        export: &str,
        packed: i64,
    ) -> wasmtime::Result<Vec<u8>> {
        let (ptr, len) = core_abi::unpack(packed);
        let data = self.memory.data(&store);
        let range =
            core_abi::checked_range(export, ptr, len, data.len()).map_err(wasmtime::Error::msg)?;
        Ok(data[range].to_vec())
    }

    pub(super) fn describe(
        &self,
        mut store: impl AsContextMut<Data = HostState>,
    ) -> wasmtime::Result<bindings::Descriptor> {
        let packed = self.describe.call(&mut store, ())?;
        let bytes = self.take(&mut store, "projector_describe", packed)?;
        core_abi::decode_descriptor(&bytes).map_err(wasmtime::Error::msg)
    }

    pub(super) fn handle(
        &self,
        mut store: impl AsContextMut<Data = HostState>,
        events: &[bindings::Event],
    ) -> wasmtime::Result<Result<(), bindings::HandleError>> {
        let (ptr, len) = self.place(&mut store, &core_abi::encode_batch(events))?;
        let packed = self.handle.call(&mut store, (ptr, len))?;
        if packed == 0 {
            return Ok(Ok(()));
        }
        let bytes = self.take(&mut store, "projector_handle", packed)?;
        Ok(Err(
            core_abi::decode_handle_error(&bytes).map_err(wasmtime::Error::msg)?
        ))
    }

    pub(super) fn query(
        &self,
        mut store: impl AsContextMut<Data = HostState>,
        name: &str,
        args: &[u8],
    ) -> wasmtime::Result<Result<Vec<u8>, bindings::QueryError>> {
        let (name_ptr, name_len) = self.place(&mut store, name.as_bytes())?;
        let (args_ptr, args_len) = self.place(&mut store, args)?;
        let packed = self
            .query
            .call(&mut store, (name_ptr, name_len, args_ptr, args_len))?;
        let bytes = self.take(&mut store, "projector_query", packed)?;
        core_abi::decode_query_result(&bytes).map_err(wasmtime::Error::msg)
    }
}
