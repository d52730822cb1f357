__version__ = "0.1.0"

# The names a user needs most, importable as `from reconpatch_nb import ...`; everything else lives
# in its module (one module per notebook: core, data, synthetic, elpv, features, coreset, scoring,
# metrics, detector, pairwise, contextual, loss, ema, train, reconpatch, cli, viz, widgets, ensemble, export).
from .data import BTAD, MVTecAD, AnomalyDataset, FolderDataset, load_image
from .synthetic import embedded_data_root
from .elpv import ELPV
from .detector import PatchCore, Prediction
from .reconpatch import ReConPatch
from .pairwise import pairwise_similarity
from .contextual import combined_similarity, contextual_similarity
from .loss import relaxed_contrastive_loss
from .ema import ema_update
from .metrics import compute_metrics
from .ensemble import Ensemble, split_normals

__all__ = ["BTAD", "MVTecAD", "AnomalyDataset", "FolderDataset", "load_image", "embedded_data_root", "ELPV", "PatchCore",
           "Prediction", "ReConPatch", "pairwise_similarity", "contextual_similarity", "combined_similarity",
           "relaxed_contrastive_loss", "ema_update", "compute_metrics", "Ensemble", "split_normals"]
