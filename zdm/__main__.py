"""``python -m zdm``, and the file spark-submit runs::

    spark-submit --master spark://HOST:7077 .../zdm/__main__.py migrate --engine spark

Run as a file, Python puts this directory first on ``sys.path``; it is taken off again, so
zdm's own modules (``config``, ``tls``, ...) cannot shadow top-level modules of those names.
"""

import os
import sys

if __name__ == "__main__":
    here = os.path.dirname(os.path.abspath(__file__))
    if sys.path and os.path.abspath(sys.path[0] or os.curdir) == here:
        del sys.path[0]
    from zdm.cli.main import app

    app(prog_name="zdm")
