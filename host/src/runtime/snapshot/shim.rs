//! The restore exports added to a pre-initialised component.
//!
//! A guest that kept tensor or model handles across `init` holds their
//! indices in its heap; the indices point into the component instance's
//! handle table, which wasmtime keeps outside linear memory and which a
//! fresh instance starts empty. wasmtime offers no API to put an entry into
//! that table except lowering an `own<T>` into the guest, so the snapshot
//! gets two extra exports, `restore-tensor: func(own<tensor>) -> u32` and
//! the same for `model`, lifted from a tiny core module whose function just
//! returns the handle index the canonical ABI gave it. Calling them in slot
//! order rebuilds the table, and the returned index proves each handle
//! landed where the guest's heap expects it.

use wasm_encoder::{
    Alias, CanonicalFunctionSection, CanonicalOption, Component, ComponentAliasSection,
    ComponentExportKind, ComponentExportSection, ComponentTypeSection, ComponentValType,
    ExportKind, ExportSection, Function, FunctionSection, InstanceSection, Instruction, Module,
    ModuleSection, PrimitiveValType, TypeSection, ValType,
};
use wasmparser::{
    CanonicalFunction, ComponentAlias, ComponentExternalKind, ComponentOuterAliasKind,
    ComponentTypeRef, Parser, Payload,
};

use super::SnapshotError;

/// Export that inserts one `own<tensor>` and returns its handle index.
pub const RESTORE_TENSOR: &str = "wasmpod-flashboot-restore-tensor";
/// Export that inserts one `own<model>` and returns its handle index.
pub const RESTORE_MODEL: &str = "wasmpod-flashboot-restore-model";

const TENSOR_INTERFACE: &str = "wasmpod:serverless/tensor@";
const MODEL_INTERFACE: &str = "wasmpod:serverless/model@";

/// Sizes of the top-level index spaces, and the imported interfaces.
#[derive(Default)]
struct IndexSpaces {
    core_modules: u32,
    core_instances: u32,
    core_funcs: u32,
    types: u32,
    funcs: u32,
    instances: u32,
    tensor_instance: Option<u32>,
    model_instance: Option<u32>,
}

impl IndexSpaces {
    fn add(&mut self, kind: ComponentExternalKind) {
        match kind {
            ComponentExternalKind::Module => self.core_modules += 1,
            ComponentExternalKind::Func => self.funcs += 1,
            ComponentExternalKind::Type => self.types += 1,
            ComponentExternalKind::Instance => self.instances += 1,
            ComponentExternalKind::Component | ComponentExternalKind::Value => {}
        }
    }

    fn scan(wasm: &[u8]) -> Result<Self, SnapshotError> {
        let bad = |e: wasmparser::BinaryReaderError| SnapshotError::Rewrite(e.to_string());
        let mut spaces = Self::default();
        let mut depth = 0u32;
        for payload in Parser::new(0).parse_all(wasm) {
            let payload = payload.map_err(bad)?;
            match &payload {
                Payload::Version { .. } => {
                    depth += 1;
                    continue;
                }
                Payload::End(_) => {
                    depth -= 1;
                    continue;
                }
                _ if depth != 1 => continue,
                _ => {}
            }
            match payload {
                Payload::ModuleSection { .. } => spaces.core_modules += 1,
                Payload::InstanceSection(r) => spaces.core_instances += r.count(),
                Payload::ComponentInstanceSection(r) => spaces.instances += r.count(),
                Payload::ComponentTypeSection(r) => spaces.types += r.count(),
                Payload::ComponentImportSection(r) => {
                    for import in r {
                        let import = import.map_err(bad)?;
                        match import.ty {
                            ComponentTypeRef::Module(_) => spaces.core_modules += 1,
                            ComponentTypeRef::Func(_) => spaces.funcs += 1,
                            ComponentTypeRef::Type(_) => spaces.types += 1,
                            ComponentTypeRef::Instance(_) => {
                                let name = import.name.name;
                                if name.starts_with(TENSOR_INTERFACE) {
                                    spaces.tensor_instance = Some(spaces.instances);
                                } else if name.starts_with(MODEL_INTERFACE) {
                                    spaces.model_instance = Some(spaces.instances);
                                }
                                spaces.instances += 1;
                            }
                            ComponentTypeRef::Component(_) | ComponentTypeRef::Value(_) => {}
                        }
                    }
                }
                Payload::ComponentAliasSection(r) => {
                    for alias in r {
                        match alias.map_err(bad)? {
                            ComponentAlias::InstanceExport { kind, .. } => spaces.add(kind),
                            ComponentAlias::CoreInstanceExport { kind, .. } => {
                                if kind == wasmparser::ExternalKind::Func {
                                    spaces.core_funcs += 1;
                                }
                            }
                            ComponentAlias::Outer { kind, .. } => match kind {
                                ComponentOuterAliasKind::CoreModule => spaces.core_modules += 1,
                                ComponentOuterAliasKind::Type => spaces.types += 1,
                                ComponentOuterAliasKind::CoreType
                                | ComponentOuterAliasKind::Component => {}
                            },
                        }
                    }
                }
                Payload::ComponentCanonicalSection(r) => {
                    for canon in r {
                        match canon.map_err(bad)? {
                            CanonicalFunction::Lift { .. } => spaces.funcs += 1,
                            _ => spaces.core_funcs += 1,
                        }
                    }
                }
                Payload::ComponentExportSection(r) => {
                    for export in r {
                        spaces.add(export.map_err(bad)?.kind);
                    }
                }
                _ => {}
            }
        }
        Ok(spaces)
    }
}

/// The core module: `(func (param i32) (result i32) local.get 0)`, exported
/// twice (one lift per resource type).
fn identity_module() -> Module {
    let mut types = TypeSection::new();
    types.ty().function([ValType::I32], [ValType::I32]);
    let mut funcs = FunctionSection::new();
    funcs.function(0);
    let mut exports = ExportSection::new();
    exports.export("tensor", ExportKind::Func, 0);
    exports.export("model", ExportKind::Func, 0);
    let mut code = wasm_encoder::CodeSection::new();
    let mut body = Function::new([]);
    body.instruction(&Instruction::LocalGet(0));
    body.instruction(&Instruction::End);
    code.function(&body);
    let mut module = Module::new();
    module
        .section(&types)
        .section(&funcs)
        .section(&exports)
        .section(&code);
    module
}

/// `wasm` with the restore exports appended (one per imported interface of
/// `tensor` and `model`; a component importing neither cannot hold their
/// handles and gets none).
pub fn add_restore_exports(wasm: &[u8]) -> Result<Vec<u8>, SnapshotError> {
    let spaces = IndexSpaces::scan(wasm)?;
    let wanted: Vec<(u32, &str, &str)> = [
        (spaces.tensor_instance, "tensor", RESTORE_TENSOR),
        (spaces.model_instance, "model", RESTORE_MODEL),
    ]
    .into_iter()
    .filter_map(|(instance, resource, export)| Some((instance?, resource, export)))
    .collect();
    if wanted.is_empty() {
        return Ok(wasm.to_vec());
    }
    let mut extra = Component::new();
    extra.section(&ModuleSection(&identity_module()));
    let mut instances = InstanceSection::new();
    instances.instantiate(
        spaces.core_modules,
        Vec::<(&str, wasm_encoder::ModuleArg)>::new(),
    );
    extra.section(&instances);
    let core_instance = spaces.core_instances;

    // Index assignment follows the order items appear: the aliases first
    // (a resource type and a core func per interface), then two types per
    // interface (`own<resource>` and the function), then the lifts.
    let mut aliases = ComponentAliasSection::new();
    for (n, &(instance, resource, _)) in wanted.iter().enumerate() {
        let _ = n;
        aliases.alias(Alias::InstanceExport {
            instance,
            kind: ComponentExportKind::Type,
            name: resource,
        });
        aliases.alias(Alias::CoreInstanceExport {
            instance: core_instance,
            kind: ExportKind::Func,
            name: resource,
        });
    }
    extra.section(&aliases);
    let resource_type = |n: u32| spaces.types + n;
    let own_type = |n: u32| spaces.types + wanted.len() as u32 + 2 * n;
    let func_type = |n: u32| own_type(n) + 1;
    let core_func = |n: u32| spaces.core_funcs + n;
    let mut types = ComponentTypeSection::new();
    for n in 0..wanted.len() as u32 {
        types.defined_type().own(resource_type(n));
        types
            .function()
            .params([("handle", ComponentValType::Type(own_type(n)))])
            .result(Some(ComponentValType::Primitive(PrimitiveValType::U32)));
    }
    extra.section(&types);
    let mut canon = CanonicalFunctionSection::new();
    for n in 0..wanted.len() as u32 {
        canon.lift(core_func(n), func_type(n), Vec::<CanonicalOption>::new());
    }
    extra.section(&canon);
    let mut exports = ComponentExportSection::new();
    for (n, &(_, _, export)) in wanted.iter().enumerate() {
        exports.export(
            export,
            ComponentExportKind::Func,
            spaces.funcs + n as u32,
            None,
        );
    }
    extra.section(&exports);

    // A component is a header and a sequence of sections: the new ones go
    // after the existing ones, which they only reference.
    let extra = extra.finish();
    let mut out = wasm.to_vec();
    out.extend_from_slice(&extra[8..]);
    Ok(out)
}
