"""The only package that imports FastAPI and uvicorn."""
