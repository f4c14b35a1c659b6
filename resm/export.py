"""``resm export``: consolidate a training checkpoint (plain torch or ZeRO-sharded) into a
fair-esm ``.pt`` and, optionally, a Hugging Face folder."""

from __future__ import annotations

from pathlib import Path

import torch

from .backbone.config import ESM2Config
from .backbone.esm2 import ESM2
from .backbone.load import (
    CheckpointError,
    fair_esm_name_problem,
    load_state,
    non_finite,
    regression_path,
    resm_meta,
    save_fair_esm,
    save_hf,
)
from .config import UsageError
from .mapping import get_scheme
from .train import newest_checkpoint
from .train_state import EXPORT_HINT, guarded_torch_load, load_engine_state, load_trainer_state
from .utils.io import transaction
from .utils.paths import no_such, same_file


def resolve_checkpoint(path: Path) -> Path:
    """A checkpoint folder, or a run folder (its newest checkpoint)."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: {no_such(path, 'checkpoint or run folder')}")
    if not path.is_dir():
        raise CheckpointError(f"{path}: is a file; give a run folder or one of its checkpoints/step_* folders")
    if any(path.glob("trainer_rank0.*")):
        return path
    found = newest_checkpoint(path)
    if found is None:
        raise CheckpointError(f"{path}: neither a checkpoint folder nor a run folder with checkpoints/")
    return found


def consolidated_state(folder: Path, trust: bool = False) -> dict:
    """The model's weights from a checkpoint: ``engine.pt`` (plain torch), or DeepSpeed's
    shards merged by ``zero_to_fp32``, which reads them through :func:`guarded_torch_load`."""
    if (folder / "engine.pt").exists():
        return load_engine_state(folder / "engine.pt", "cpu")["model"]
    if (folder / "ds").is_dir():
        import contextlib
        import io

        # DeepSpeed prints its progress (and, when first imported, its accelerator) on standard
        # output: an export says one line, and a damaged folder one error line, not three
        with contextlib.redirect_stdout(io.StringIO()):
            from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint
        with guarded_torch_load(trust, hint=EXPORT_HINT), contextlib.redirect_stdout(io.StringIO()):
            try:
                return get_fp32_state_dict_from_zero_checkpoint(str(folder), tag="ds")
            except CheckpointError:
                raise
            except Exception as e:  # DeepSpeed's own complaints about a damaged folder
                first = (str(e).strip().splitlines() or [type(e).__name__])[0]
                raise CheckpointError(f"{folder / 'ds'}: not a readable DeepSpeed checkpoint ({first})") from None
    raise CheckpointError(f"{folder}: no engine.pt and no DeepSpeed 'ds' folder")


DTYPES = {"fp32": None, "fp16": torch.float16, "bf16": torch.bfloat16}


def export_checkpoint(
    path: Path, out: Path, hf: Path | None = None, trust: bool = False, dtype: str = "fp32", any_name: bool = False
) -> tuple[ESM2, dict]:
    """Write the model of checkpoint (or run folder) ``path`` to the fair-esm ``.pt`` ``out``,
    its contact regression beside it as fair-esm expects (``<stem>-contact-regression.pt``),
    and, given ``hf``, a Hugging Face folder; all or nothing (one transaction). ``dtype``
    ``fp16``/``bf16`` halves the ``.pt`` (the Hugging Face folder stays fp32). ``out``'s name
    must start with ``esm2`` (fair-esm's test for an ESM-2 file) unless ``any_name`` (then no
    regression file is written: fair-esm would not read that model anyway); that name is
    refused before anything is read, a :class:`resm.config.UsageError` (the command line's
    exit code 2: ``--out`` and ``--any-name`` decide it, whatever the checkpoint holds).
    Returns the model and the metadata written with it (its ``step``, ``exported_from``: the
    checkpoint folder, and the mapping scheme's fields)."""
    misread = fair_esm_name_problem(out)
    if misread and not any_name:
        raise UsageError(misread)
    if dtype not in DTYPES:
        raise CheckpointError(f"export dtype must be one of {', '.join(DTYPES)}, not {dtype!r}")
    if hf is not None and not fair_esm_name_problem(out) and same_file(hf, regression_path(out)):
        # the folder took the place of the file, and both were said to be written
        raise CheckpointError(
            f"--hf {hf}: is where the contact regression of --out {out} is written; give another path"
        )
    folder = resolve_checkpoint(path)
    state = load_trainer_state(folder, 0, trust, hint=EXPORT_HINT)
    fp = state["fingerprint"]
    if not isinstance(fp, dict) or "architecture" not in fp:
        raise CheckpointError(f"{state['file']}: not a resm pretraining checkpoint (no architecture)")
    try:
        model = ESM2(ESM2Config(**fp["architecture"]))
        scheme = get_scheme(fp["data"]["scheme"])
    except (TypeError, KeyError, ValueError) as e:
        raise CheckpointError(f"{state['file']}: unusable architecture or scheme ({e})") from None
    weights = {k: v.float() for k, v in consolidated_state(folder, trust).items()}
    if (bad := non_finite(weights)) is not None:
        raise CheckpointError(f"{folder}: weight {bad} holds NaN or infinite values (did the training diverge?)")
    # the one loader of ESM-2 weights: a weight of another shape than the recorded architecture
    # gives it (a trainer state of another run) was torch's RuntimeError, said as unexpected
    where = f"{folder}: weights do not fit the architecture {Path(state['file']).name} records"
    if not load_state(model, weights, where):  # a training checkpoint holds the contact regression
        raise CheckpointError(f"{where}: no contact regression (contact_head.regression.weight)")
    if DTYPES[dtype] is not None:
        cast = {k: v.to(DTYPES[dtype]) for k, v in model.state_dict().items() if v.is_floating_point()}
        if (bad := non_finite(cast)) is not None:
            most = float(model.state_dict()[bad].abs().max())
            raise CheckpointError(
                f"{folder}: weight {bad} does not fit {dtype} (values up to {most:.3g}, beyond "
                f"{float(torch.finfo(DTYPES[dtype]).max):.3g}); export as fp32 or bf16"
            )
    meta = resm_meta(scheme, fp.get("arch"), exported_from=str(folder), step=int(state["step"]))
    meta["dtype"] = dtype
    with transaction():  # the contact regression beside it only where fair-esm would read the pair
        save_fair_esm(model, out, meta, dtype=DTYPES[dtype], companion=not misread)
        if hf is not None:
            save_hf(model, hf, meta)
    return model, meta
