"""Image folders, identity splits, presets/transforms, pair/triplet/M-per-class sampling, protocol files,
multi-view (self-supervised) datasets.

Importing this package does not import torchvision (transforms import it when built).
"""

from siamese.data.batch_views import BatchViews
from siamese.data.batches import (
    IdentityBatchSampler,
    ResumableBatchSampler,
    ShuffledBatchSampler,
    batch_collate,
    identity_batch_sampler,
)
from siamese.data.datasets import ImageDataset
from siamese.data.detect import FaceDetector
from siamese.data.digits import default_cache_dir, materialize_digits
from siamese.data.folder import ImageIndex, ImageRecord, list_images, rotated_classes, scan_folder
from siamese.data.glyphs import materialize_embedded, materialize_glyphs
from siamese.data.images import (
    IMAGE_EXTENSIONS,
    ImageLoader,
    decode_image,
    is_image_file,
    open_image,
    to_mode,
)
from siamese.data.inputs import EmbeddingInput, list_inputs
from siamese.data.oneshot_runs import OneShotRun, list_oneshot_runs, read_oneshot_run
from siamese.data.pair_files import PairList, generate_pairs, read_pair_list, read_pairs, write_pairs_csv
from siamese.data.pairs import IdentityPools, PairDataset, pair_collate
from siamese.data.presets import PRESETS, Preset, ViewAugment, get_preset, preprocessing_spec, resolve_preset
from siamese.data.splits import SPLITS, Split, load_split_index, split_identities
from siamese.data.transforms import background_colour, get_transform
from siamese.data.triplets import TripletDataset, triplet_collate
from siamese.data.validate import drop_unreadable
from siamese.data.views import (
    MultiCrop,
    MultiView,
    MultiViewDataset,
    item_seed,
    multicrop_transform,
    multiview_collate,
    ssl_transform,
)

__all__ = [
    "BatchViews",
    "drop_unreadable",
    "IMAGE_EXTENSIONS",
    "PRESETS",
    "SPLITS",
    "EmbeddingInput",
    "FaceDetector",
    "IdentityBatchSampler",
    "ResumableBatchSampler",
    "ShuffledBatchSampler",
    "IdentityPools",
    "ImageDataset",
    "ImageIndex",
    "ImageLoader",
    "ImageRecord",
    "MultiCrop",
    "MultiView",
    "MultiViewDataset",
    "OneShotRun",
    "PairDataset",
    "PairList",
    "Preset",
    "Split",
    "TripletDataset",
    "ViewAugment",
    "background_colour",
    "batch_collate",
    "default_cache_dir",
    "generate_pairs",
    "get_preset",
    "get_transform",
    "identity_batch_sampler",
    "is_image_file",
    "item_seed",
    "list_images",
    "list_inputs",
    "list_oneshot_runs",
    "load_split_index",
    "materialize_digits",
    "materialize_embedded",
    "materialize_glyphs",
    "multicrop_transform",
    "multiview_collate",
    "open_image",
    "decode_image",
    "pair_collate",
    "preprocessing_spec",
    "read_oneshot_run",
    "resolve_preset",
    "read_pair_list",
    "read_pairs",
    "rotated_classes",
    "scan_folder",
    "split_identities",
    "ssl_transform",
    "to_mode",
    "triplet_collate",
    "write_pairs_csv",
]
