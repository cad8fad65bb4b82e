"""The scoring API over HTTP (FastAPI): see `app.create_app`."""
