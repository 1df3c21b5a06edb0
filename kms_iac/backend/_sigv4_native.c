/* SigV4's expected signature for KMS's usual request (POST to "/", no query string), in C.
 *
 * Why: a server verifying requests that SDK clients sign one by one spends most of the
 * verification in Python glue around a few hash calls (building the canonical request line by
 * line, trimming header values, hex digests). This does the same steps in one call, with
 * OpenSSL's SHA-256. kms_iac/backend/sigv4.py stays the reference: it calls this only for what
 * it handles exactly as Python does, and computes everything else itself. A test cross-checks
 * the two, and both against botocore's signer, on generated requests.
 *
 * signature(method, names, headers, body, timestamp, scope, key) -> str | None
 *   method     the request method (upper-cased here, as sigv4.py does)
 *   names      the SignedHeaders names (a list of str, already lower-case)
 *   headers    the request's headers (a dict: lower-case name -> value; a missing one is "")
 *   body       the body received (bytes)
 *   timestamp  the request's ISO-8601 basic timestamp
 *   scope      "DATE/REGION/SERVICE/aws4_request"
 *   key        SigV4's derived signing key (bytes)
 * Returns the lower-case hex signature, or None when a name or value holds anything but
 * printable ASCII and spaces (tabs, controls, non-ASCII): SigV4's trimming of such values
 * follows Python's str.split(), which sigv4.py applies itself.
 */
#define PY_SSIZE_T_CLEAN
#define OPENSSL_SUPPRESS_DEPRECATED /* SHA256_Init & co: no algorithm fetch per call, unlike EVP in OpenSSL 3 */
#include <Python.h>
#include <string.h>
#include <openssl/sha.h>

typedef struct {
    char *data;
    Py_ssize_t len;
    Py_ssize_t cap;
    char small[2048];
} Buffer;

static int buffer_reserve(Buffer *b, Py_ssize_t extra) {
    if (b->len + extra <= b->cap)
        return 0;
    Py_ssize_t cap = b->cap;
    while (cap < b->len + extra)
        cap *= 2;
    char *grown = b->data == b->small ? PyMem_Malloc(cap) : PyMem_Realloc(b->data, cap);
    if (grown == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    if (b->data == b->small)
        memcpy(grown, b->small, b->len);
    b->data = grown;
    b->cap = cap;
    return 0;
}

static int buffer_add(Buffer *b, const char *data, Py_ssize_t len) {
    if (buffer_reserve(b, len) < 0)
        return -1;
    memcpy(b->data + b->len, data, len);
    b->len += len;
    return 0;
}

static void buffer_free(Buffer *b) {
    if (b->data != b->small)
        PyMem_Free(b->data);
}

static const char HEX[] = "0123456789abcdef";

static void hex(const unsigned char *digest, char *out) {
    for (int i = 0; i < SHA256_DIGEST_LENGTH; i++) {
        out[2 * i] = HEX[digest[i] >> 4];
        out[2 * i + 1] = HEX[digest[i] & 15];
    }
}

/* A str's ASCII bytes, or NULL (no error set) when it holds anything but printable ASCII and
 * spaces. */
static const char *printable_ascii(PyObject *text, Py_ssize_t *len) {
    if (!PyUnicode_Check(text) || !PyUnicode_IS_ASCII(text))
        return NULL;
    const char *s = (const char *)PyUnicode_DATA(text);
    Py_ssize_t n = PyUnicode_GET_LENGTH(text);
    for (Py_ssize_t i = 0; i < n; i++)
        if (s[i] < 0x20 || s[i] > 0x7e)
            return NULL;
    *len = n;
    return s;
}

/* A header value as SigV4 canonicalises it: leading and trailing spaces dropped, each run of
 * spaces inside made one (what " ".join(value.split()) does to printable ASCII). */
static int add_trimmed(Buffer *b, const char *s, Py_ssize_t n) {
    if (buffer_reserve(b, n) < 0)
        return -1;
    char *out = b->data + b->len;
    Py_ssize_t w = 0;
    int pending_space = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (s[i] == ' ') {
            pending_space = w > 0;
            continue;
        }
        if (pending_space) {
            out[w++] = ' ';
            pending_space = 0;
        }
        out[w++] = s[i];
    }
    b->len += w;
    return 0;
}

static void hmac_sha256(const unsigned char *key, size_t key_len, const char *msg, size_t msg_len,
                        unsigned char *out) {
    unsigned char block[SHA256_CBLOCK];
    unsigned char inner[SHA256_DIGEST_LENGTH];
    SHA256_CTX ctx;
    memset(block, 0, sizeof block);
    if (key_len > SHA256_CBLOCK) {
        SHA256((const unsigned char *)key, key_len, block);
    } else {
        memcpy(block, key, key_len);
    }
    unsigned char pad[SHA256_CBLOCK];
    for (int i = 0; i < SHA256_CBLOCK; i++)
        pad[i] = block[i] ^ 0x36;
    SHA256_Init(&ctx);
    SHA256_Update(&ctx, pad, sizeof pad);
    SHA256_Update(&ctx, msg, msg_len);
    SHA256_Final(inner, &ctx);
    for (int i = 0; i < SHA256_CBLOCK; i++)
        pad[i] = block[i] ^ 0x5c;
    SHA256_Init(&ctx);
    SHA256_Update(&ctx, pad, sizeof pad);
    SHA256_Update(&ctx, inner, sizeof inner);
    SHA256_Final(out, &ctx);
}

static PyObject *signature(PyObject *self, PyObject *args) {
    PyObject *method, *names, *headers, *timestamp, *scope;
    Py_buffer body, key;
    (void)self;
    if (!PyArg_ParseTuple(args, "UO!O!y*UUy*", &method, &PyList_Type, &names, &PyDict_Type, &headers, &body,
                          &timestamp, &scope, &key))
        return NULL;
    PyObject *result = NULL;
    Buffer b = {.data = NULL, .len = 0, .cap = sizeof b.small};
    b.data = b.small;
    Py_ssize_t n;
    const char *s;
    unsigned char digest[SHA256_DIGEST_LENGTH];
    char digest_hex[2 * SHA256_DIGEST_LENGTH];

    if ((s = printable_ascii(method, &n)) == NULL)
        goto unhandled;
    if (buffer_reserve(&b, n + 4) < 0)
        goto done;
    for (Py_ssize_t i = 0; i < n; i++)
        b.data[b.len++] = (s[i] >= 'a' && s[i] <= 'z') ? (char)(s[i] - 32) : s[i];
    if (buffer_add(&b, "\n/\n\n", 4) < 0)
        goto done;
    Py_ssize_t count = PyList_GET_SIZE(names);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *name = PyList_GET_ITEM(names, i);
        Py_ssize_t name_len, value_len = 0;
        const char *name_s = printable_ascii(name, &name_len);
        if (name_s == NULL)
            goto unhandled;
        PyObject *value = PyDict_GetItemWithError(headers, name); /* borrowed */
        const char *value_s = "";
        if (value == NULL) {
            if (PyErr_Occurred())
                goto done;
        } else if ((value_s = printable_ascii(value, &value_len)) == NULL) {
            goto unhandled;
        }
        if (buffer_add(&b, name_s, name_len) < 0 || buffer_add(&b, ":", 1) < 0 ||
            add_trimmed(&b, value_s, value_len) < 0 || buffer_add(&b, "\n", 1) < 0)
            goto done;
    }
    if (buffer_add(&b, "\n", 1) < 0)
        goto done;
    for (Py_ssize_t i = 0; i < count; i++) {
        Py_ssize_t name_len;
        const char *name_s = printable_ascii(PyList_GET_ITEM(names, i), &name_len);
        if (name_s == NULL) /* checked above; a list of str cannot change while the dict is read */
            goto unhandled;
        if ((i > 0 && buffer_add(&b, ";", 1) < 0) || buffer_add(&b, name_s, name_len) < 0)
            goto done;
    }
    SHA256((const unsigned char *)body.buf, (size_t)body.len, digest);
    hex(digest, digest_hex);
    if (buffer_add(&b, "\n", 1) < 0 || buffer_add(&b, digest_hex, sizeof digest_hex) < 0)
        goto done;
    SHA256((const unsigned char *)b.data, (size_t)b.len, digest); /* the canonical request's hash */
    hex(digest, digest_hex);

    b.len = 0; /* now the string to sign */
    Py_ssize_t ts_len, scope_len;
    const char *ts = printable_ascii(timestamp, &ts_len), *sc = printable_ascii(scope, &scope_len);
    if (ts == NULL || sc == NULL)
        goto unhandled;
    if (buffer_add(&b, "AWS4-HMAC-SHA256\n", 17) < 0 || buffer_add(&b, ts, ts_len) < 0 ||
        buffer_add(&b, "\n", 1) < 0 || buffer_add(&b, sc, scope_len) < 0 || buffer_add(&b, "\n", 1) < 0 ||
        buffer_add(&b, digest_hex, sizeof digest_hex) < 0)
        goto done;
    hmac_sha256((const unsigned char *)key.buf, (size_t)key.len, b.data, (size_t)b.len, digest);
    hex(digest, digest_hex);
    result = PyUnicode_FromStringAndSize(digest_hex, sizeof digest_hex);
    goto done;
unhandled:
    result = Py_NewRef(Py_None);
done:
    buffer_free(&b);
    PyBuffer_Release(&body);
    PyBuffer_Release(&key);
    return result;
}

static PyMethodDef methods[] = {
    {"signature", signature, METH_VARARGS,
     "SigV4 signature of a POST to \"/\" with no query string, or None for values sigv4.py canonicalises itself."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_sigv4_native", NULL, -1, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__sigv4_native(void) { return PyModule_Create(&module); }
