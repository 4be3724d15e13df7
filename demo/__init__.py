"""The Gradio demo of Signal (``app.py``): search a gallery of RGB / NIR / TIR triples.

Modules, one concept each:
    options        flags, each with an environment variable (Hugging Face Spaces)
    startup        loading the weights, the model, the gallery and the feature engine
    gallery        the gallery: a triples folder or a dataset's test gallery
    features       model inputs and batched gallery feature extraction
    feature_cache  on-disk, atomically written cache of gallery features
    search         the gallery search: encode a query, rank, split scores by part (no UI code)
    explain        the two explanation views and the modality switch's rank comparison
    thumbnails     RGB | NIR | TIR pictures of gallery entries
    served         the per-search images the page is sent, written atomically
    uploads        safe intake of a visitor's own gallery (zip or files)
    upload_guard   a cap on gradio's upload folder (oldest files out, else 507), and on every request body
    embedded_files  files embedded in an API call's JSON (data: URLs), taken in as uploads or refused
    missing_gallery  the gallery's side of the missing-modality protocol (features with modalities zeroed)
    sessions       per-visitor galleries, their limits and clean-up
    text           the words, markdown and JSON the page and the API show
    ui             the gr.Blocks page: its sections and their wiring
    handlers       the page's event functions (search, draw, select, view switch, APIs)
    upload_ui      the page's "your own gallery" section
    serve          the process: options, signals, exit status (``app.py`` and a Space's ``app.py`` call it)
    space          ``python -m demo.space``: a Hugging Face Space folder in one command, and its push
    space_files    the Space's text files: requirements, front matter, .gitattributes, app entry

``signal_core`` never imports this package or gradio.
"""
