"""The app launched on loopback for gradio_client tests.

    with App() as app:            # or the module-scoped `app` fixture (support/fixtures.py)
        app.client.predict(..., api_name="/validate_template")

Build, launch on a free port with prevent_thread_lock, open a gradio_client.Client, and close
the server in `finally` (also when the launch or the client fails half-way)."""
from __future__ import annotations

from remote_servers import free_port


class App:
    """The workbench app, launched in this process; `client` talks to it as a script would."""

    def __init__(self, model: str = "default", data: str = "bbc", **launch):
        from gradio_client import Client

        from workbench.app.main import build_app, launch_demo, launch_kwargs

        self.demo = build_app(model=model, data=data)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        try:
            launch_demo(self.demo, server_name="127.0.0.1", server_port=self.port, prevent_thread_lock=True, quiet=True,
                        **{**launch_kwargs(), **launch})
            self.client = Client(self.url, verbose=False)
        except BaseException:
            self.demo.close()
            raise

    def close(self) -> None:
        self.demo.close()

    def __enter__(self) -> "App":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def load_data(client, source: str = "bbc", *, upload=None, path: str = "", text_col=None, label_col=None,
              seed: int = 0) -> tuple:
    """/load_data by argument name (the endpoint is positional: source, upload, path, text column,
    label column, split seed). Returns its outputs (summary, splits, ..., table, ...)."""
    return client.predict(source, upload, path, text_col, label_col, seed, api_name="/load_data")
