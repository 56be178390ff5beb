// njs (stream module) for the SSO gateway: Prefect's websocket auth message gets the
// gateway's auth string. See sso_stream.conf.
//
// Per TCP connection: if its first request is a websocket upgrade and the HTTP half
// answers 101 (it checked the person's token), the client's first data frame is read whole
// (control frames before it, a ping, pass as they are), and if it is Prefect's
// {"type": "auth", ...} text message its token is replaced by the
// auth string (from $prefect_auth_string_b64). Anything unexpected (a first request that is
// not an upgrade, any other answer than 101, bytes from the client before the 101, a
// compressed or fragmented frame, another message) is passed through untouched: Prefect
// then refuses the socket itself. The token the client sent is dropped, never logged.

// njs 0.7 hands the filter byte strings (one character per byte), later versions Buffers.
function bytes(data) {
    if (typeof data !== 'string') {
        return Buffer.from(data);
    }
    var out = Buffer.alloc(data.length);
    for (var i = 0; i < data.length; i++) {
        out[i] = data.charCodeAt(i);
    }
    return out;
}

function auth_message(s) {
    var state = 'request';  // request -> wait101 -> frame -> done
    var held = Buffer.alloc(0);

    s.on('download', function (data, flags) {
        if (state === 'wait101') {
            state = bytes(data.slice(0, 12)).toString() === 'HTTP/1.1 101' ? 'frame' : 'done';
        }
        s.send(data, flags);
    });

    s.on('upload', function (data, flags) {
        if (state === 'done') {
            s.send(data, flags);
            return;
        }
        var chunk = bytes(data);
        if (state === 'request') {
            held = Buffer.concat([held, chunk]);
            var end = held.indexOf('\r\n\r\n');
            if (end < 0 && !flags.last && held.length < 65536) {
                return;  // the request's headers are not complete yet
            }
            var head = held.slice(0, end < 0 ? held.length : end).toString();
            state = /\r\nupgrade:[ \t]*websocket[ \t]*\r?(\n|$)/i.test(head) ? 'wait101' : 'done';
            s.send(held, flags);
            held = Buffer.alloc(0);
            return;
        }
        if (state === 'wait101') {
            state = 'done';  // a websocket client waits for the 101: never rewrite this one
        }
        if (state === 'frame') {
            held = Buffer.concat([held, chunk]);
            var out = [];
            for (;;) {
                var frame = parseFrame(held);
                if (frame === null) {
                    if (!flags.last) {
                        break;  // the first message is not complete yet
                    }
                    state = 'done';
                    out.push(held);
                    held = Buffer.alloc(0);
                    break;
                }
                var bytes_ = held.slice(0, frame.end);
                held = held.slice(frame.end);
                if (frame.opcode >= 8) {
                    out.push(bytes_);  // a ping before the auth message (Prefect's client sends one)
                    continue;
                }
                state = 'done';
                out.push(rewrite(frame, bytes_, s), held);
                held = Buffer.alloc(0);
                break;
            }
            if (out.length) {
                s.send(Buffer.concat(out), flags);
            }
            return;
        }
        s.send(chunk, flags);
    });
}

// A client frame (RFC 6455 5.2): {fin, rsv, opcode, mask, payload (unmasked), end}, or null
// while incomplete. Client frames are always masked.
function parseFrame(buf) {
    if (buf.length < 2) {
        return null;
    }
    var len = buf[1] & 0x7f;
    var off = 2;
    if (len === 126) {
        if (buf.length < 4) {
            return null;
        }
        len = buf.readUInt16BE(2);
        off = 4;
    } else if (len === 127) {
        if (buf.length < 10) {
            return null;
        }
        len = buf.readUInt32BE(2) * 4294967296 + buf.readUInt32BE(6);
        off = 10;
    }
    var masked = (buf[1] & 0x80) !== 0;
    var start = off + (masked ? 4 : 0);
    if (buf.length < start + len) {
        return null;
    }
    var mask = masked ? buf.slice(off, off + 4) : Buffer.from([0, 0, 0, 0]);
    var payload = Buffer.alloc(len);
    for (var i = 0; i < len; i++) {
        payload[i] = buf[start + i] ^ mask[i % 4];
    }
    return { fin: (buf[0] & 0x80) !== 0, rsv: buf[0] & 0x70, opcode: buf[0] & 0x0f, masked: masked,
             mask: mask, payload: payload, end: start + len };
}

// The frame with the auth string as its token, or the original bytes if it is not
// Prefect's auth message in one uncompressed text frame.
function rewrite(frame, buf, s) {
    var original = buf.slice(0, frame.end);
    if (!frame.fin || frame.rsv !== 0 || frame.opcode !== 1 || !frame.masked) {
        return original;
    }
    var message;
    try {
        message = JSON.parse(frame.payload.toString());
    } catch (e) {
        return original;
    }
    if (message === null || typeof message !== 'object' || message.type !== 'auth') {
        return original;
    }
    message.token = Buffer.from(s.variables.prefect_auth_string_b64, 'base64').toString();
    var payload = Buffer.from(JSON.stringify(message));
    var header;
    if (payload.length < 126) {
        header = Buffer.from([0x81, 0x80 | payload.length]);
    } else if (payload.length < 65536) {
        header = Buffer.from([0x81, 0x80 | 126, payload.length >> 8, payload.length & 0xff]);
    } else {
        return original;  // an auth message is a few hundred bytes at most
    }
    var masked = Buffer.alloc(payload.length);
    for (var i = 0; i < payload.length; i++) {
        masked[i] = payload[i] ^ frame.mask[i % 4];
    }
    return Buffer.concat([header, frame.mask, masked]);
}

export default { auth_message };
