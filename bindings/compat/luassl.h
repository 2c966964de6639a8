/* LuaSec on the green TLS layer: the compat layer's internal API for its
 * ssl module (ls_ssl.c: contexts, connections, the module) and its
 * certificates (ls_x509.c). */
#ifndef GL_LUASSL_H
#define GL_LUASSL_H

#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "luasocket.h"

/* Pushes an SSL:Certificate owning x (one reference). */
void glC_pushcert(lua_State *L, X509 *x);

/* ssl.loadcertificate(pem) -> certificate | nil */
int glC_loadcertificate(lua_State *L);

/* Makes the SSL:Certificate class (once). */
void glC_open_x509(lua_State *L);

#endif
