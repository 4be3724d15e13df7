"""Signal demo: ``python app.py [--weights ...] [--gallery DIR] ...`` (``--help`` lists the options).

Starts a Gradio page on http://127.0.0.1:7860 (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT respected)
searching the bundled demo gallery with the bundled demo model. The process itself (options, signals,
exit status) is :mod:`demo.serve`; a Hugging Face Space is built with ``python -m demo.space``.
"""
import sys

from demo.serve import main

if __name__ == "__main__":
    sys.exit(main())
