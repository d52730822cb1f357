__version__ = "0.1.0"

# The names a user needs most, importable as `from reconpatch_nb import ...`. Each lives in its module (one module per
# notebook); the module is imported on first use of the name, so `import reconpatch_nb.config` or `reconpatch --help`
# does not pay for torch, timm or faiss.
_WHERE = {
    "BTAD": "data", "MVTecAD": "data", "AnomalyDataset": "data", "FolderDataset": "data", "load_image": "data",
    "embedded_data_root": "synthetic", "ELPV": "elpv",
    "PatchCoreConfig": "config", "ReConPatchConfig": "config", "TrainConfig": "config",
    "Detector": "detector", "PatchCore": "detector", "Prediction": "detector", "ReConPatch": "reconpatch",
    "pairwise_similarity": "pairwise", "contextual_similarity": "contextual", "combined_similarity": "contextual",
    "relaxed_contrastive_loss": "loss", "ema_update": "ema", "compute_metrics": "metrics", "paired_bootstrap": "metrics",
    "make_detector": "registry", "Ensemble": "ensemble", "split_normals": "ensemble", "load_model": "ensemble",
}
__all__ = list(_WHERE)

def __getattr__(name):
    if name in _WHERE:
        import importlib
        value = getattr(importlib.import_module(f"{__name__}.{_WHERE[name]}"), name)
        globals()[name] = value  # once imported, an ordinary attribute
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

def __dir__(): return sorted(list(globals()) + __all__)
