//! The WASI a guest gets: no files, environment, arguments or sockets (WASI's defaults for clocks and random), made
//! on the guest's first WASI call, so a guest that imports no WASI (the builtins, built for `wasm32-unknown-unknown`)
//! does not pay for building it in every fresh store.

use wasmtime_wasi::{WasiCtx, WasiCtxBuilder};

#[derive(Default)]
pub(crate) struct EmptyWasi(Option<WasiCtx>);

impl EmptyWasi {
    pub(crate) fn ctx(&mut self) -> &mut WasiCtx {
        self.0.get_or_insert_with(|| WasiCtxBuilder::new().build())
    }
}
