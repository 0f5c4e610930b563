//! Gather a smaller model's tensors from a larger one's by index sets (INHERIT.md's table): the
//! embedding and head by vocabulary rows and hidden columns, each projection by its head blocks
//! or neurons and the hidden channels, norms by the hidden channels.

use tch::{Device, Kind, Tensor};
use tinyforge_model::{ModelConfig, Role, tensor_specs};
use tinyforge_train::Model;

use crate::error::Result;
use crate::select::Width;

fn index(ids: &[i64], device: Device) -> Tensor {
    Tensor::from_slice(ids).to_device(device)
}

/// The tensors of `student` cut from `teacher`: its `layers` (teacher layer indices), `width`
/// within each (indexed by student layer), and `vocab_rows` of the embedding and head (all rows
/// when `None`). Returns a model of the student's shape on the teacher's device.
pub fn extract(
    teacher: &Model,
    student: &ModelConfig,
    layers: &[usize],
    width: &Width,
    vocab_rows: Option<&Tensor>,
) -> Result<Model> {
    let t = teacher.config();
    let device = teacher.device();
    let flat = teacher.flat().detach();
    let find = |role: Role, layer: Option<usize>| {
        teacher
            .specs()
            .iter()
            .find(|s| s.role == role && s.layer == layer)
            .map(|s| s.view(&flat))
    };
    let hidden = index(&width.hidden, device);
    let (hd, d) = (t.head_dim as i64, t.dim as i64);
    let mut named = Vec::new();
    tch::no_grad(|| -> Result<()> {
        for spec in tensor_specs(student) {
            let teacher_layer = spec.layer.map(|l| layers[l]);
            let source_role = match spec.role {
                // A tied teacher's head is its embedding.
                Role::Head if t.tied_embeddings => Role::Embed,
                r => r,
            };
            let w = find(source_role, teacher_layer).expect("the teacher has every tensor role");
            let l = spec.layer.unwrap_or(0);
            let heads = || index(&width.heads[l], device);
            let kv = || index(&width.kv_heads[l], device);
            let neurons = || index(&width.neurons[l], device);
            let cut = match spec.role {
                Role::Embed | Role::Head => {
                    let rows = match vocab_rows {
                        Some(r) => w.index_select(0, &r.to_device(device)),
                        None => w,
                    };
                    rows.index_select(1, &hidden)
                }
                Role::InputNorm | Role::PostNorm | Role::FinalNorm | Role::OBias => {
                    w.index_select(0, &hidden)
                }
                Role::Q => w
                    .view([t.heads as i64, hd, d])
                    .index_select(0, &heads())
                    .index_select(2, &hidden),
                Role::K | Role::V => w
                    .view([t.kv_heads as i64, hd, d])
                    .index_select(0, &kv())
                    .index_select(2, &hidden),
                Role::QBias => w.view([t.heads as i64, hd]).index_select(0, &heads()),
                Role::KBias | Role::VBias => w.view([t.kv_heads as i64, hd]).index_select(0, &kv()),
                Role::O => w
                    .view([d, t.heads as i64, hd])
                    .index_select(0, &hidden)
                    .index_select(1, &heads()),
                Role::Gate | Role::Up => w.index_select(0, &neurons()).index_select(1, &hidden),
                Role::Down => w.index_select(0, &hidden).index_select(1, &neurons()),
            };
            let shape: Vec<i64> = spec.shape.iter().map(|&x| x as i64).collect();
            named.push((
                spec.name,
                cut.reshape(shape.as_slice()).to_kind(Kind::Float),
            ));
        }
        Ok(())
    })?;
    let mut model = Model::zeros(student, device, teacher.compute_kind())?;
    model.load_named(&named, std::path::Path::new("<inherited>"))?;
    Ok(model)
}
