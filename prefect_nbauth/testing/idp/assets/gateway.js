// njs for the test gateway (prefect_nbauth.testing.idp): every request's token is checked
// with the identity provider's introspection endpoint (RFC 7662), no caching, so
// a revoked token is refused on its next request.
//
// Variables set in nginx.conf: $introspection_url, $introspection_auth (the
// gateway's own client credentials, "Basic ..."), $gateway_header (lower case).
// On success the answer carries X-Gateway-User: who the token speaks for (the
// introspection's `username`, else `sub`, else the `client_id` of a machine client), for
// `auth_request_set $gateway_user $sent_http_x_gateway_user;`.
async function introspect(r) {
    let value = r.headersIn[r.variables.gateway_header] || '';
    if (value.toLowerCase().startsWith('bearer ')) {
        value = value.slice(7).trim();
    }
    if (!value) {
        deny(r, 'missing');
        return;
    }
    let reply;
    try {
        reply = await ngx.fetch(r.variables.introspection_url, {
            method: 'POST',
            headers: {
                'Authorization': r.variables.introspection_auth,
                'Content-Type': 'application/x-www-form-urlencoded',
                'Accept': 'application/json',
            },
            body: 'token=' + encodeURIComponent(value) + '&token_type_hint=access_token',
        });
    } catch (e) {
        r.error('introspection unreachable: ' + e);
        r.return(503);
        return;
    }
    if (reply.status === 400) {
        // e.g. unsupported_token_type: a JWT (an ID token) the provider will not introspect
        deny(r, 'not an access token');
        return;
    }
    if (reply.status !== 200) {
        r.error('introspection answered HTTP ' + reply.status);
        r.return(503);
        return;
    }
    const text = await reply.text();
    const body = JSON.parse(text);
    if (body.active === true) {
        r.headersOut['X-Gateway-User'] = String(body.username || body.sub || body.client_id || '');
        r.return(204);
    } else {
        deny(r, 'inactive');
    }
}

function deny(r, reason) {
    r.headersOut['WWW-Authenticate'] =
        'Bearer realm="test-gateway", error="invalid_token", error_description="' + reason + '"';
    r.return(401);
}

export default { introspect };
