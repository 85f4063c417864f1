import NIOCore
import NIOHTTP1

/// What ``HTTPRequestLimitHandler`` tells the handlers behind the decoder.
enum HTTPRequestLimitEvent: Sendable, Equatable {
    /// The first byte of a new request head arrived (starts the read timeout).
    case requestStarted
    /// The request line or header block grew past its limit; answer with this status and close.
    /// Nothing more is passed on from this connection.
    case limitExceeded(HTTPResponseStatus)
}

/// Sits in front of the HTTP decoder and counts raw bytes of each request head, so that an
/// oversized request line (→ 414) or header block (→ 431) is caught as soon as it crosses the
/// configured limit, long before llhttp's own ~80 KB limit, and without buffering it.
///
/// It also marks where each request starts (``HTTPRequestLimitEvent/requestStarted``), which
/// drives the read (slowloris) timeout. Requests carry no body here (the connection handler
/// rejects any body and stops reading), so the end of a header block is the end of a request.
final class HTTPRequestLimitHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    enum State: Equatable {
        /// Before the first byte of the next request (CR/LF here are ignored, as RFC 9112 allows).
        case betweenRequests
        /// Inside the request line; `bytes` counted so far, CR excluded.
        case requestLine(bytes: Int)
        /// Inside the header block; `bytes` counted so far (CRLFs included) and the length of
        /// the current line (0 at the start of a line, so a bare CRLF ends the block).
        case headers(bytes: Int, lineBytes: Int)
        /// A limit was exceeded: everything further is dropped.
        case failed
    }

    private enum Action {
        case forward(Range<Int>)
        case started
        case exceeded(HTTPResponseStatus)
    }

    private let maxRequestLineBytes: Int
    private let maxHeaderBytes: Int
    private(set) var state: State = .betweenRequests

    init(maxRequestLineBytes: Int, maxHeaderBytes: Int) {
        self.maxRequestLineBytes = maxRequestLineBytes
        self.maxHeaderBytes = maxHeaderBytes
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard self.state != .failed else { return }
        let buffer = Self.unwrapInboundIn(data)
        // Scan first, act afterwards: firing into the pipeline may re-enter this handler.
        let actions = buffer.withUnsafeReadableBytes { self.scan($0) }
        for action in actions {
            switch action {
            case .forward(let range):
                let slice = buffer.getSlice(at: buffer.readerIndex + range.lowerBound, length: range.count)!
                context.fireChannelRead(Self.wrapInboundOut(slice))
            case .started:
                context.fireUserInboundEventTriggered(HTTPRequestLimitEvent.requestStarted)
            case .exceeded(let status):
                context.fireUserInboundEventTriggered(HTTPRequestLimitEvent.limitExceeded(status))
            }
        }
    }

    /// Advances the state over `bytes` and returns what to pass on, in order.
    private func scan(_ bytes: UnsafeRawBufferPointer) -> [Action] {
        var actions: [Action] = []
        var segmentStart = 0
        let cr = UInt8(ascii: "\r")
        let lf = UInt8(ascii: "\n")
        for (index, byte) in bytes.enumerated() {
            switch self.state {
            case .failed:
                return actions
            case .betweenRequests:
                if byte == cr || byte == lf { continue }
                if segmentStart < index { actions.append(.forward(segmentStart..<index)) }
                segmentStart = index
                actions.append(.started)
                self.state = .requestLine(bytes: 1)
                if 1 > self.maxRequestLineBytes {
                    self.state = .failed
                    actions.append(.exceeded(.uriTooLong))
                    return actions
                }
            case .requestLine(let count):
                if byte == lf {
                    self.state = .headers(bytes: 0, lineBytes: 0)
                } else if byte != cr {
                    if count + 1 > self.maxRequestLineBytes {
                        // Drop this request's bytes from this buffer: only complete earlier
                        // requests (already forwarded) are answered before the error.
                        self.state = .failed
                        actions.append(.exceeded(.uriTooLong))
                        return actions
                    }
                    self.state = .requestLine(bytes: count + 1)
                }
            case .headers(let count, let lineBytes):
                if count + 1 > self.maxHeaderBytes {
                    self.state = .failed
                    actions.append(.exceeded(.requestHeaderFieldsTooLarge))
                    return actions
                }
                if byte == lf {
                    self.state = lineBytes == 0 ? .betweenRequests : .headers(bytes: count + 1, lineBytes: 0)
                } else if byte == cr {
                    self.state = .headers(bytes: count + 1, lineBytes: lineBytes)
                } else {
                    self.state = .headers(bytes: count + 1, lineBytes: lineBytes + 1)
                }
            }
        }
        if segmentStart < bytes.count {
            actions.append(.forward(segmentStart..<bytes.count))
        }
        return actions
    }
}
