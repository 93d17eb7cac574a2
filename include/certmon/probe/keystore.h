/* Keystores and private keys, for file targets (filecert.h): the certificates of a PKCS#12
 * file (read with GnuTLS) or of a Java KeyStore (JKS: parsed here, since the format keeps
 * certificates unencrypted), and whether a private key belongs to a certificate.
 *
 * Everything here works on bytes in memory (filecert.c reads the files): no file I/O, no
 * global state, safe on any thread. Secrets: a password is only read, never copied or shown;
 * a private key is decrypted only to compute its public key's identity and is freed at once
 * (GnuTLS clears key material when it frees it); no key bytes leave these functions. */
#ifndef CERTMON_KEYSTORE_H
#define CERTMON_KEYSTORE_H

#include <stdbool.h>
#include <stddef.h>

#include "certmon/probe/result.h"
#include "certmon/probe/x509.h"

/* Bounds of a JKS file (besides filecert's size cap): entries, certificates of one private-key
 * entry's chain, and certificates kept from the whole store. */
#define CM_JKS_MAX_ENTRIES 10000
#define CM_JKS_MAX_CHAIN 64
#define CM_KEYSTORE_MAX_CERTS 1000

/* True when buf starts like a DER PKCS#12 PFX: SEQUENCE { INTEGER 3, SEQUENCE ... }. */
bool cm_p12_sniff(const unsigned char *buf, size_t len);

/* True when buf starts with a JKS (0xFEEDFEED) or JCEKS (0xCECECECE) magic number. */
bool cm_jks_sniff(const unsigned char *buf, size_t len);

/* Reads the certificates of the PKCS#12 file buf (DER) into chain (appended; on any failure
 * chain is left empty). password NULL means none was configured: the empty password is tried,
 * as OpenSSL's `-passout pass:` writes it. The certificates come in file order, except that
 * those whose localKeyId matches a key bag's (the leaf of a key pair) come first. Key bags are
 * never decrypted. *integrity gets CM_INTEGRITY_VERIFIED (the MAC checks out) or
 * CM_INTEGRITY_ABSENT (the file has no MAC). Returns 0; -ENOMEM; or CM_EBADCERT with a
 * message in err ("cannot decrypt P12: wrong password", "...: it is protected by a password,
 * and none is given", a damaged file, no certificate in it). */
int cm_p12_read(const unsigned char *buf, size_t len, const char *password, struct cm_chain *chain,
                enum cm_integrity *integrity, char *err, size_t errlen);

/* Parses the JKS file buf into chain (appended; left empty on failure): every entry's
 * certificates in file order, a private-key entry's chain leaf first. Every length is checked
 * against what is left of buf and against the CM_JKS_* bounds. With a password (UTF-8, taken
 * as the Java characters it encodes) the SHA-1 integrity digest is checked: *integrity gets
 * CM_INTEGRITY_VERIFIED or CM_INTEGRITY_FAILED (wrong password or altered file; the
 * certificates are still returned); without one CM_INTEGRITY_UNVERIFIED. Returns 0; -ENOMEM;
 * or CM_EBADCERT with a message in err that names the problem and its offset (a JCEKS store,
 * a truncated or malformed entry, a certificate that does not parse, no certificate). */
int cm_jks_read(const unsigned char *buf, size_t len, const char *password, struct cm_chain *chain,
                enum cm_integrity *integrity, char *err, size_t errlen);

/* True for the PEM labels of private keys ("PRIVATE KEY", "RSA PRIVATE KEY",
 * "EC PRIVATE KEY", "ENCRYPTED PRIVATE KEY", "DSA PRIVATE KEY"). */
bool cm_key_pem_label(const char *label);

/* Compares the private key in buf (one PEM key block, or DER PKCS#8 / PKCS#1) with cert's
 * public key (its SPKI SHA-256). password decrypts an encrypted key (NULL: none given). Sets
 * out->status to CM_KEY_MATCH or CM_KEY_MISMATCH with out->type (static, x509.h's key type
 * names) and out->spki_sha256, or to CM_KEY_UNREADABLE with out->error saying why (the key is
 * encrypted and no password is given, wrong password, not a private key). out->path is not
 * touched. Returns 0 or -ENOMEM. */
int cm_key_compare(const unsigned char *buf, size_t len, const char *password,
                   const struct cm_cert *cert, struct cm_key_check *out);

#endif
