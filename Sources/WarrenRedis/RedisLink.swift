import CHiredis
import WarrenSystem

/// One live Redis connection, the `Handle` of the client's ``OwnedConnection``: the transport and
/// hiredis's reply parser. Created, used and closed on the owner thread only.
final class RedisLink {
    let transport: RedisTransport
    private let reader: UnsafeMutablePointer<redisReader>
    private let buffer: UnsafeMutableRawBufferPointer
    /// Replies parsed so far. Before the first, a failure may say what the port really speaks
    /// (TLS, or a server that refused our client certificate after a TLS 1.3 handshake).
    private(set) var replies = 0
    /// The first byte the server sent on this connection.
    private var firstByte: UInt8?
    private var closed = false

    init(transport: RedisTransport) {
        self.transport = transport
        reader = redisReaderCreate()
        buffer = .allocate(byteCount: 16 * 1024, alignment: 1)
    }

    /// Reads until hiredis has parsed one whole reply, by `deadline`. The caller frees the reply
    /// with `freeReplyObject`.
    func readReply(deadline: MonotonicClock.Instant) throws(RedisIOFailure) -> UnsafeMutableRawPointer {
        while true {
            var reply: UnsafeMutableRawPointer?
            guard redisReaderGetReply(reader, &reply) == REDIS_OK else {
                let text = withUnsafeBytes(of: reader.pointee.errstr) { raw in
                    String(decoding: raw.prefix(while: { $0 != 0 }), as: UTF8.self)
                }
                throw .notRedisProtocol(text.isEmpty ? "protocol error" : text, firstByte: replies == 0 ? firstByte : nil)
            }
            if let reply {
                replies += 1
                return reply
            }
            let count = try transport.read(into: buffer, deadline: deadline)
            if firstByte == nil { firstByte = buffer[0] }
            redisReaderFeed(reader, buffer.baseAddress?.assumingMemoryBound(to: CChar.self), count)
        }
    }

    /// Closes the transport and frees the parser. Idempotent.
    func close() {
        guard !closed else { return }
        closed = true
        transport.close()
        redisReaderFree(reader)
        buffer.deallocate()
    }

    deinit { close() }
}
