"""The baseline webhook: a FastAPI app that reads the review and answers a fixed "allowed"
without looking at it. Served by the benchmark with and without uvloop + httptools."""

from fastapi import FastAPI, Request, Response

ALLOWED = (
    b'{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview",'
    b'"response":{"uid":"steady","allowed":true}}'
)

app = FastAPI(docs_url=None, redoc_url=None, openapi_url=None)


@app.post("/mutate")
async def mutate(request: Request) -> Response:
    await request.body()
    return Response(ALLOWED, media_type="application/json")
