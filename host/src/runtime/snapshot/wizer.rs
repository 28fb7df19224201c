//! wasmtime-wizer's view of a live instance: it reads the memories and
//! globals of the instrumented component through the `wasmtime:wizer/access`
//! exports it added. Errors are kept (the trait has no error path) and
//! reported after the snapshot instead of panicking inside the host.

use std::sync::{Arc, Mutex};

use wasmtime::Store;
use wasmtime::component::{Instance, Lift, WasmList};
use wasmtime_wizer::ComponentInstanceState;

use crate::runtime::state::WorkerState;

pub(crate) struct WizerAccess<'a> {
    pub store: &'a mut Store<WorkerState>,
    pub instance: Instance,
    pub error: Arc<Mutex<Option<String>>>,
}

impl WizerAccess<'_> {
    async fn call<R, R2>(
        &mut self,
        instance: &str,
        func: &str,
        default: R2,
        use_ret: impl FnOnce(&mut Store<WorkerState>, R) -> R2,
    ) -> R2
    where
        R: Lift + Send + Sync + 'static,
    {
        let outcome: wasmtime::Result<R2> = async {
            let (_, exported) = self
                .instance
                .get_export(&mut *self.store, None, instance)
                .ok_or_else(|| wasmtime::format_err!("no export {instance}"))?;
            let (_, index) = self
                .instance
                .get_export(&mut *self.store, Some(&exported), func)
                .ok_or_else(|| wasmtime::format_err!("no export {instance}#{func}"))?;
            let f = self
                .instance
                .get_typed_func::<(), (R,)>(&mut *self.store, index)?;
            let (ret,) = f.call_async(&mut *self.store, ()).await?;
            let out = use_ret(&mut *self.store, ret);
            Ok(out)
        }
        .await;
        match outcome {
            Ok(v) => v,
            Err(e) => {
                let mut slot = self.error.lock().unwrap_or_else(|p| p.into_inner());
                slot.get_or_insert_with(|| format!("reading {instance}#{func}: {e:#}"));
                default
            }
        }
    }
}

impl ComponentInstanceState for WizerAccess<'_> {
    async fn call_func_ret_list_u8(
        &mut self,
        instance: &str,
        func: &str,
        contents: impl FnOnce(&[u8]) + Send,
    ) {
        // wasmtime-wizer expects `contents` to be called once per memory
        // and asserts on it while rewriting; on a failed read it gets an
        // empty memory, and the kept error fails the snapshot afterwards.
        let mut contents = Some(contents);
        self.call(instance, func, (), |store, list: WasmList<u8>| {
            if let Some(contents) = contents.take() {
                contents(list.as_le_slice(&*store));
            }
        })
        .await;
        if let Some(contents) = contents.take() {
            contents(&[]);
        }
    }

    async fn call_func_ret_s32(&mut self, instance: &str, func: &str) -> i32 {
        self.call(instance, func, 0, |_, r| r).await
    }

    async fn call_func_ret_s64(&mut self, instance: &str, func: &str) -> i64 {
        self.call(instance, func, 0, |_, r| r).await
    }

    async fn call_func_ret_f32(&mut self, instance: &str, func: &str) -> u32 {
        self.call(instance, func, 0, |_, r: f32| r.to_bits()).await
    }

    async fn call_func_ret_f64(&mut self, instance: &str, func: &str) -> u64 {
        self.call(instance, func, 0, |_, r: f64| r.to_bits()).await
    }
}
