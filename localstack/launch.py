"""Run LocalStack's runtime (what `python -m localstack.runtime.main` does),
with two fixes for running several instances on one host. Started by
localstack/start; both fixes are for localstack-core 4.9.2 (pinned).

1. S3 scratch directory. localstack-core hard-codes /tmp/localstack-s3-storage
   for S3 bucket directories (services/s3/provider.py, DEFAULT_S3_TMP_DIR; no
   setting reads it). Every instance on a machine would share it, and one
   instance deleting a bucket removes the directory that another instance's
   bucket of the same name spools its objects into. DROPFOLDER_S3_TMP_DIR,
   when set, replaces it before the S3 provider is created.

2. Shutdown hang. start uses the hypercorn gateway server (the default
   twisted one binds 0.0.0.0 whatever GATEWAY_LISTEN says). Its shutdown()
   calls loop.stop() from the shutdown thread, which does not wake an event
   loop idle in select(): about one SIGTERM in ten left the process running.
   We wake the loop thread-safely after it.
"""

import os
import sys

s3_tmp = os.environ.get("DROPFOLDER_S3_TMP_DIR")
if s3_tmp:
    import localstack.services.s3.provider as s3_provider

    if not hasattr(s3_provider, "DEFAULT_S3_TMP_DIR"):
        sys.exit("launch.py: localstack.services.s3.provider has no DEFAULT_S3_TMP_DIR any more")
    s3_provider.DEFAULT_S3_TMP_DIR = s3_tmp

from localstack.runtime.server import hypercorn as _hypercorn_server  # noqa: E402

_shutdown = _hypercorn_server.HypercornRuntimeServer.shutdown


def _shutdown_and_wake(self):
    _shutdown(self)
    try:
        self.loop.call_soon_threadsafe(self.loop.stop)
    except RuntimeError:  # loop already closed
        pass


_hypercorn_server.HypercornRuntimeServer.shutdown = _shutdown_and_wake

from localstack.runtime.main import main  # noqa: E402

main()
