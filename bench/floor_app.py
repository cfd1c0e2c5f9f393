"""The framework floor: a bare Flask app answering a fixed JSON, served by the same gunicorn
options as `authserver serve` (bench/run.py starts it through authserver.serve)."""

from flask import Flask, jsonify

from authserver.web.access_log import AccessLog

app = Flask(__name__)


@app.post("/floor")
@app.get("/floor")
def floor():
    return jsonify(access_token="x" * 40, token_type="Bearer", expires_in=600)


# Under granian, the same access log as authserver's (authserver/web/access_log.py).
granian_app = AccessLog(app)
