"""Generates the test key pairs and their public JWKS (run once; the outputs are checked in).

    .venv/bin/python filters/jwt-auth/testdata/generate_keys.py

Private keys are test-only fixtures; they sign nothing outside these tests.
"""
import base64, json, os
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa, ec, ed25519

here = os.path.dirname(os.path.abspath(__file__))
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
def int_bytes(n):
    return n.to_bytes((n.bit_length() + 7) // 8, "big")

def write_private(name, key):
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    open(os.path.join(here, name), "wb").write(pem)

keys = []
rsa_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
write_private("rsa.pem", rsa_key)
n = rsa_key.public_key().public_numbers()
keys.append({"kty": "RSA", "kid": "rsa-1", "use": "sig", "n": b64(int_bytes(n.n)), "e": b64(int_bytes(n.e))})

for name, curve, size, kid in [("ec256.pem", ec.SECP256R1(), 32, "ec256-1"), ("ec384.pem", ec.SECP384R1(), 48, "ec384-1")]:
    k = ec.generate_private_key(curve)
    write_private(name, k)
    pn = k.public_key().public_numbers()
    keys.append({"kty": "EC", "kid": kid, "use": "sig", "crv": "P-256" if size == 32 else "P-384",
                 "x": b64(pn.x.to_bytes(size, "big")), "y": b64(pn.y.to_bytes(size, "big"))})

ed = ed25519.Ed25519PrivateKey.generate()
write_private("ed25519.pem", ed)
raw = ed.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
keys.append({"kty": "OKP", "kid": "ed-1", "use": "sig", "crv": "Ed25519", "x": b64(raw)})

secret = os.urandom(32)
open(os.path.join(here, "hmac.key"), "wb").write(b64(secret).encode())
keys.append({"kty": "oct", "kid": "hs-1", "use": "sig", "k": b64(secret)})

# A second RSA key that is NOT in the JWKS (tokens signed with it must fail).
other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
write_private("rsa-other.pem", other)
# Its public PEM, for the algorithm-confusion test (HS256 keyed with an RSA public key).
open(os.path.join(here, "rsa.pub.pem"), "wb").write(rsa_key.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))

json.dump({"keys": keys}, open(os.path.join(here, "jwks.json"), "w"), indent=1)
print("wrote", ", ".join(sorted(os.listdir(here))))
