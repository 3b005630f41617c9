"""`workbench serve`: open the browser workbench (default http://127.0.0.1:7860)."""
from __future__ import annotations


def register(sub) -> None:
    p = sub.add_parser("serve", help="start the web UI", description=__doc__)
    p.add_argument("--host", default=None,
                   help="bind address (default $GRADIO_SERVER_NAME, else 127.0.0.1: loopback only)")
    p.add_argument("--allowed-hosts", action="append", default=None, metavar="NAME",
                   help="a host name the server answers besides its address and localhost (repeatable; "
                        "'.example.com' admits sub-domains; also $WORKBENCH_ALLOWED_HOSTS). Other Host "
                        "headers get 403, against DNS rebinding")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--share", action="store_true", help="create a public gradio.live link (needs internet)")
    p.add_argument("--auth", default=None, help="user:pass (or set WORKBENCH_AUTH); required beyond loopback")
    p.add_argument("--insecure", action="store_true",
                   help="allow serving beyond loopback without --auth (only on a network you trust)")
    p.add_argument("--data-dir", action="append", default=None, metavar="DIR",
                   help="a folder remote users may load data from (repeatable; default $WORKBENCH_HOME/data); "
                        "beyond loopback, server paths outside these folders and uploads are refused")
    p.add_argument("--allowed-servers", action="append", default=None, metavar="URL",
                   help="an inference server (http://HOST:PORT/v1) remote users may save and use (repeatable; also "
                        "$WORKBENCH_ALLOWED_SERVERS). Beyond loopback, other server URLs are refused")
    p.add_argument("--model", default="default", help="model to load at start")
    p.add_argument("--data", default="bbc", help="dataset to open at start")
    p.add_argument("--no-browser", action="store_true")
    p.set_defaults(func=run)


def run(args) -> int:
    from workbench.app.main import launch

    launch(host=args.host, port=args.port, share=args.share, auth=args.auth, model=args.model, data=args.data,
           open_browser=not args.no_browser, insecure=args.insecure, data_dirs=args.data_dir,
           allowed_hosts=args.allowed_hosts, allowed_servers=args.allowed_servers)
    return 0
