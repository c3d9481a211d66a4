"""Draw a digit and watch saved CNNs answer, live, in your browser (offline: every byte comes from this repository).

    python draw.py                                   # small, medium, large and best (runs/models/, else results/)
    python draw.py results/models/large students/alice/model.keras     # anything evaluate.py reads
    python draw.py --no-browser --port 8000          # print the address only (a remote machine: docs/usage.md)

After each stroke, the page shows the 28 x 28 image the models see (prepared as predict.py prepares a photo:
predict.to_mnist), every model's ten probabilities, and for the model you pick: every convolution's feature maps,
its first convolution's filters, and where it looks (integrated gradients, as visualize.py draws them).

The server is the standard library's ThreadingHTTPServer: one page (labtools/draw_page.html, plain JavaScript) and
one JSON endpoint, POST /api/predict (docs/usage.md). It listens on 127.0.0.1 unless --host says otherwise.
"""

if __name__ == "__main__":  # run as a script: Keras's backend loaded first, its start-up lines filtered out
    from labtools import console

    console.start("draw.py")

import base64
import io
import json
import sys
import threading
import time
import webbrowser
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np

import data
import models
import predict
from labtools import backend, console, grading, inside, scores
from labtools.errors import PROJECT_ERRORS, DataError, UsageError, short_error

ROOT = Path(__file__).resolve().parent
PAGE = ROOT / "labtools" / "draw_page.html"
CAVEAT = ROOT / "docs" / "inside.md"
DEFAULT_MODELS = ["small", "medium", "large", "best"]
MAX_BODY = 8 * 1024 * 1024  # bytes: a phone photo, base64-encoded
MAX_SIDE = 4096  # pixels a side of a drawing sent as raw pixels


def default_model(name):
    """A default model: the student's own run (runs/models/NAME, where train.py writes) when there is one, else the
    reference committed in results/models/NAME."""
    own = ROOT / "runs" / "models" / name
    return own if Path(f"{own}.json").is_file() else ROOT / "results" / "models" / name


class LiveModel:
    """One saved model, ready to answer a digit in one call: its probabilities and every convolution's feature maps
    come from one Keras model built once (the same layers, so no copy of the weights), so that nothing is traced
    again from one drawing to the next."""

    def __init__(self, name, path, test_sets):
        self.name, self.path = name, path
        saved, self.recipe, normalize = grading.load_run(path, models.MODELS)
        self.model = grading.channels_last(saved.model, self.recipe)
        try:
            self.input_kind, self.data_format = grading.input_layout(self.model, self.recipe)
        except ValueError as error:
            raise UsageError(f"{path}: not an MNIST digit model: {error}") from None
        self.options = self.recipe.input_options if self.recipe else {}
        if normalize is None:  # nothing recorded how it was trained: the pixel scale evaluate.py would choose
            normalize, note = grading.choose_pixel_scale(path, self.model, test_sets, self.input_kind,
                                                         self.data_format, self.options)
            print(f"   {name}: {note}")
        self.normalize = normalize
        try:
            self.probe = inside.Probe(self.model)
        except ValueError:  # an MLP: probabilities only
            self.probe = None
        self.live = self._build()
        self.predict(np.zeros((28, 28), np.float32))  # traced now, not on the first stroke

    def _build(self):
        import keras

        if self.probe is None:
            return self.model
        chain = [layer for layer in self.model.layers if not isinstance(layer, keras.layers.InputLayer)]
        inputs = keras.Input(shape=self.model.input_shape[1:])
        outputs, kept = inputs, []
        for index, layer in enumerate(chain):
            outputs = layer(outputs, training=False)
            if index in self.probe.block_ends:
                kept.append(outputs)
        return keras.Model(inputs, [outputs, *kept])

    def inputs(self, digit):
        X = digit.reshape(1, 1, 28, 28).astype(np.float32) * (1 if self.normalize else 255)
        return data.prepare_inputs(X, self.input_kind, self.data_format, **self.options)

    def predict(self, digit):
        """(probabilities (10,), [(convolution's name, maps (H, W, channels))])."""
        found = self.live.predict_on_batch(self.inputs(digit))
        found = found if isinstance(found, (list, tuple)) else [found]
        probabilities, _ = scores.as_probabilities(np.asarray(found[0], np.float64))
        maps = []
        if self.probe is not None:
            names = [self.probe.body[index].name for index in self.probe.convolutions]
            maps = [(name, self.probe._channels_last(np.asarray(block))[0]) for name, block in zip(names, found[1:])]
        return probabilities[0], maps

    def explain(self, digit, prediction):
        """Integrated gradients (28, 28) for the class it chose, from black, as visualize.py draws them."""
        attributions, _ = self.probe.integrated_gradients(self.inputs(digit), np.array([prediction]))
        return inside.pixel_maps(attributions, (28, 28))[0]


def load_models(paths):
    """{name: LiveModel}: the models that load; one line for each that does not (the others still come up)."""
    default = not paths
    paths = paths or [str(default_model(name)) for name in DEFAULT_MODELS]
    test_sets = grading.TestSets(data.get_data_mnist, data.prepare_inputs, 1000)
    loaded = {}
    for path in paths:
        try:
            found = grading.find_pairs([path])
        except PROJECT_ERRORS as error:
            print(f"draw.py: skipped: {error}", file=sys.stderr, flush=True)
            continue
        for filename in found:
            name = grading.display_name(filename, paths)
            name = name if name not in loaded else str(filename)
            try:
                loaded[name] = LiveModel(name, filename, test_sets)
            except PROJECT_ERRORS as error:
                print(f"draw.py: skipped: {error}", file=sys.stderr, flush=True)
            except Exception as error:  # a model from elsewhere that cannot run here: that file only
                print(f"draw.py: skipped: {filename}: Keras cannot run it ({short_error(error)})", file=sys.stderr,
                      flush=True)
            else:
                print(f"   {name}: {filename}", flush=True)
    if not loaded:
        where = "" if not default else "; train one first: python train.py --model large"
        raise UsageError(f"no model could be loaded from {', '.join(paths)}{where}")
    return loaded


class RequestError(ValueError):
    """A request the page would not send: its HTTP status and one line."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


def _b64(array):
    return base64.b64encode(np.ascontiguousarray(array).tobytes()).decode("ascii")


def _bytes(found, what):
    if not isinstance(found, str):
        raise RequestError(HTTPStatus.BAD_REQUEST, f"{what}: a base64 string expected")
    try:
        return base64.b64decode(found, validate=True)
    except ValueError:
        raise RequestError(HTTPStatus.BAD_REQUEST, f"{what}: not valid base64") from None


class Answerer:
    """What the endpoint computes, one request at a time (Keras models are not shared between threads)."""

    def __init__(self, live_models):
        self.models = live_models
        self.lock = threading.Lock()
        self._test = None

    def test_digits(self):
        if self._test is None:
            _, (X_test, y_test), _ = data.get_data_mnist(normalize=True)
            self._test = X_test[:, 0], y_test.argmax(axis=1)
        return self._test

    def digit_from(self, request):
        """(the 28 x 28 digit 0..1, extra fields for the answer) from a request: raw canvas pixels, a photo's
        bytes, or an MNIST test image (by index, or a random one)."""
        if "pixels" in request:
            width, height = request.get("width"), request.get("height")
            if not all(isinstance(side, int) and 28 <= side <= MAX_SIDE for side in (width, height)):
                raise RequestError(HTTPStatus.BAD_REQUEST, f"width and height: whole numbers from 28 to {MAX_SIDE}")
            pixels = _bytes(request["pixels"], "pixels")
            if len(pixels) != width * height:
                raise RequestError(HTTPStatus.BAD_REQUEST, f"pixels: {len(pixels)} bytes, not width x height = "
                                                           f"{width * height} (one byte per pixel, row by row)")
            gray = np.frombuffer(pixels, np.uint8).reshape(height, width).astype(np.float32)
            return predict.to_mnist(gray, source="the drawing"), {}
        if "photo" in request:
            gray = predict.load_grayscale(io.BytesIO(_bytes(request["photo"], "photo")), source="the photo")
            return predict.to_mnist(gray, source="the photo"), {}
        if "digit" in request:  # already 28 x 28 (the page asks for the attribution map of the digit it shows)
            try:
                digit = np.asarray(request["digit"], np.float32)
            except (TypeError, ValueError):
                digit = None
            if digit is None or digit.shape != (784,) or not np.all((digit >= 0) & (digit <= 1)):
                raise RequestError(HTTPStatus.BAD_REQUEST, "digit: 784 numbers from 0 to 1 (28 x 28, row by row)")
            return digit.reshape(28, 28), {}
        if "mnist" in request:
            images, labels = self.test_digits()
            index = request["mnist"]
            if index is None:
                index = int(np.random.default_rng().integers(len(images)))
            if not isinstance(index, int) or not 0 <= index < len(images):
                raise RequestError(HTTPStatus.BAD_REQUEST, f"mnist: a test image index from 0 to {len(images) - 1}")
            return images[index], {"index": index, "label": int(labels[index])}
        raise RequestError(HTTPStatus.BAD_REQUEST, 'give "pixels" (with "width" and "height"), "photo" or "mnist"')

    def answer(self, request):
        if not isinstance(request, dict):
            raise RequestError(HTTPStatus.BAD_REQUEST, "a JSON object expected")
        picked = request.get("model")
        if picked is not None and picked not in self.models:
            raise RequestError(HTTPStatus.BAD_REQUEST, f"model: one of {', '.join(self.models)}")
        everyone = request.get("answers", True)
        if not everyone and picked is None:
            raise RequestError(HTTPStatus.BAD_REQUEST, '"answers": false needs "model"')
        started = time.perf_counter()
        try:
            digit, extra = self.digit_from(request)
        except DataError as error:  # a blank drawing, a photo without a digit: said, not failed
            raise RequestError(HTTPStatus.UNPROCESSABLE_ENTITY, str(error)) from None
        timing = {"prepare": time.perf_counter() - started}
        answers, explained = [], None
        with self.lock:
            for name, live in self.models.items():
                if not everyone and name != picked:
                    continue
                probabilities, maps = live.predict(digit)
                prediction = int(np.argmax(probabilities))
                answers.append({"name": name, "prediction": prediction,
                                "probabilities": [round(float(p), 5) for p in probabilities]})
                if name == picked and live.probe is not None:
                    explained = {"model": name, "prediction": prediction, "maps": maps}
            timing["models"] = time.perf_counter() - started - timing["prepare"]
            if explained is not None and request.get("explain", True):
                explained["attribution"] = self.models[picked].explain(digit, explained["prediction"])
        timing["total"] = time.perf_counter() - started
        timing["explain"] = timing["total"] - timing["models"] - timing["prepare"]
        return {**extra, "digit": [round(float(v), 5) for v in digit.ravel()], "models": answers,
                "explained": self.explained_json(explained),
                "timing_ms": {key: round(value * 1000, 2) for key, value in timing.items()}}

    def explained_json(self, explained):
        """Feature maps and filters as bytes (0..255 of each convolution's largest value; filters 128 at 0) and the
        attribution map on its own symmetric scale (its 99.5th percentile of |value| is 1), as visualize.py."""
        if explained is None:
            return None
        live = self.models[explained["model"]]
        maps = []
        for number, (name, found) in enumerate(explained["maps"], start=1):
            top = float(found.max()) or 1.0
            maps.append({"name": f"convolution {number} ({name})", "height": found.shape[0],
                         "width": found.shape[1], "channels": found.shape[2], "max": round(top, 4),
                         "pixels": _b64(np.clip(np.moveaxis(found, -1, 0) / top * 255, 0, 255).astype(np.uint8))})
        kernels = live.probe.first_filters().sum(axis=2)  # (height, width, filters), summed over input channels
        limit = float(np.abs(kernels).max()) or 1.0
        filters = {"height": kernels.shape[0], "width": kernels.shape[1], "count": kernels.shape[2],
                   "pixels": _b64(np.clip(np.moveaxis(kernels, -1, 0) / limit * 127 + 128, 0, 255).astype(np.uint8))}
        result = {"model": explained["model"], "prediction": explained["prediction"], "feature_maps": maps, "filters": filters}
        if "attribution" in explained:
            found = explained["attribution"]
            limit = float(np.percentile(np.abs(found), 99.5)) or 1.0
            result["attribution"] = [round(float(v), 3) for v in np.clip(found / limit, -1, 1).ravel()]
        return result


class Handler(BaseHTTPRequestHandler):
    answerer = None  # set by make_server
    server_version = "draw.py"

    def log_message(self, format, *args):  # no line per request: the terminal stays readable
        pass

    def send(self, status, body, content_type="application/json"):
        body = body if isinstance(body, bytes) else body.encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", f"{content_type}; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):  # the page was closed or reloaded meanwhile
            self.close_connection = True

    def fail(self, status, message):
        self.send(status, json.dumps({"error": message}) + "\n")

    def do_GET(self):
        path = self.path.split("?")[0]
        if path in ("/", "/index.html"):
            self.send(HTTPStatus.OK, PAGE.read_bytes(), "text/html")
        elif path == "/api/models":
            self.send(HTTPStatus.OK, json.dumps({"models": list(self.answerer.models),
                                                 "backend": backend.describe()}))
        elif path == "/docs/inside.md":
            self.send(HTTPStatus.OK, CAVEAT.read_bytes(), "text/plain")
        elif path == "/favicon.ico":
            self.send_response(HTTPStatus.NO_CONTENT)
            self.end_headers()
        else:
            self.fail(HTTPStatus.NOT_FOUND, f"{path}: no such page (the page is /, the endpoint POST /api/predict)")

    def do_POST(self):
        if self.path.split("?")[0] != "/api/predict":
            self.close_connection = True
            return self.fail(HTTPStatus.NOT_FOUND, f"{self.path}: no such endpoint (POST /api/predict)")
        try:
            length = int(self.headers.get("Content-Length", ""))
        except ValueError:
            self.close_connection = True
            return self.fail(HTTPStatus.LENGTH_REQUIRED, "a Content-Length header is required")
        if length < 0 or length > MAX_BODY:
            self.close_connection = True  # the body is not read
            return self.fail(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body of {length} bytes: at most {MAX_BODY}")
        try:
            request = json.loads(self.rfile.read(length))
        except (ValueError, UnicodeDecodeError):
            return self.fail(HTTPStatus.BAD_REQUEST, "the body is not JSON")
        try:
            self.send(HTTPStatus.OK, json.dumps(self.answerer.answer(request)))
        except RequestError as error:
            self.fail(error.status, str(error))


def make_server(live_models, host="127.0.0.1", port=0):
    handler = type("DrawHandler", (Handler,), {"answerer": Answerer(live_models)})
    server = ThreadingHTTPServer((host, port), handler)
    server.daemon_threads = True
    # Ctrl-C stops at once: without this, server_close waits for every handler thread, and one blocked on a
    # browser's idle keep-alive connection would hold the server up until the browser lets go
    server.block_on_close = False
    return server


def make_parser():
    parser = console.HelpParser(description="A page to draw a digit and watch saved models answer, live.")
    parser.add_argument("paths", nargs="*", metavar="PATH",
                        help="saved models, as evaluate.py takes them (default: "
                             f"{', '.join(DEFAULT_MODELS)} from runs/models/, else results/models/)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on; 0.0.0.0 lets every machine that reaches this one draw "
                             "and run your models (no password)")
    parser.add_argument("--port", type=int, default=0, help="port (0: a free one)")
    parser.add_argument("--no-browser", action="store_true", help="print the address, do not open a browser")
    return parser


def run(args):
    print(backend.describe(), flush=True)
    live_models = load_models(args.paths)
    try:
        server = make_server(live_models, args.host, args.port)
    except OSError as error:
        raise UsageError(f"--host {args.host} --port {args.port}: cannot listen there ({error.strerror})") from None
    host = "127.0.0.1" if args.host in ("0.0.0.0", "") else args.host
    url = f"http://{host}:{server.server_address[1]}/"
    print(f"draw.py: the page is at {url} (Ctrl-C stops it)", flush=True)
    if not args.no_browser:
        webbrowser.open(url)
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0


def main(argv=None):
    return console.run("draw.py", run, make_parser().parse_args(argv), on_interrupt="stopped")


if __name__ == "__main__":
    sys.exit(main())
