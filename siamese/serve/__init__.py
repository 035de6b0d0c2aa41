"""The HTTP service (`siamese serve`): verification, identification, enrolment and embedding behind
a versioned API, with API keys, upload limits, micro-batched inference, metrics and a web page.

Needs the serve extra (`pip install 'siamese[serve]'`): FastAPI, uvicorn, python-multipart,
prometheus-client. `app` builds the application, `service` holds the model and gallery, `batcher`
the inference worker, `uploads` the limits on what arrives, `auth`/`security` the keys.
"""

from siamese.serve.app import create_app
from siamese.serve.config import ServeConfig

__all__ = ["ServeConfig", "create_app"]
