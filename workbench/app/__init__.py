"""The browser workbench (Gradio). `main.build_app()` builds it, `main.launch()` serves it."""
