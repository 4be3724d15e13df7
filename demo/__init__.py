"""The Gradio demo of Signal (``app.py``): search a gallery of RGB / NIR / TIR triples.

Modules, one concept each:
    images         decode any uploaded file into an 8-bit RGB array (16-bit, RGBA, huge, ...)
    gallery        the gallery: a triples folder or a dataset's test gallery
    features       model inputs and batched gallery feature extraction
    feature_cache  on-disk, atomically written cache of gallery features
    overlays       SIM token-selection and LAM sampling drawings
    thumbnails     RGB | NIR | TIR pictures of gallery entries
    engine         the search logic (no UI code)
    ui             the gr.Blocks page
    cli            options (flags and environment variables) and start-up
    bench          query-latency measurement

``signal_core`` never imports this package or gradio.
"""
