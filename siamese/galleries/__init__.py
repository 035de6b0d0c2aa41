"""Galleries: enrolled identities that answer "is this X?" (1:1) and "who is this, if anyone?" (1:N).

One gallery concept: `gallery` owns its files, `enroll` fills and changes it (and redoes its
thresholds), `claims` verifies a claimed identity, `identify` ranks identities and makes the
open-set decision, `index` keeps its search backend in step, `backends` holds one module per
search backend behind one interface. Importing this package imports NumPy and torch-free siamese
modules only for the gallery, claims and identification; faiss and pymilvus only when chosen.
"""

from siamese.galleries.backends import BACKENDS, SearchIndex, get_index
from siamese.galleries.claims import ClaimResult, verify_against_references, verify_claim
from siamese.galleries.gallery import DEFAULT_FPIR, CalibrationSet, Gallery
from siamese.galleries.identify import Candidate, FusedSearch, Identification, Identifier

__all__ = [
    "BACKENDS",
    "DEFAULT_FPIR",
    "CalibrationSet",
    "Candidate",
    "ClaimResult",
    "FusedSearch",
    "Gallery",
    "Identification",
    "Identifier",
    "SearchIndex",
    "get_index",
    "verify_against_references",
    "verify_claim",
]
