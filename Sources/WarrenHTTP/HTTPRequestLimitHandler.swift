import NIOCore
import NIOHTTP1

/// What ``HTTPRequestLimitHandler`` tells the handlers behind the decoder.
enum HTTPRequestLimitEvent: Sendable, Equatable {
    /// A read ended inside a request head, which began in that read (starts the read timeout).
    case requestStarted
    /// The request line or header block grew past its limit; answer with this status and close.
    /// Nothing more is passed on from this connection.
    case limitExceeded(HTTPResponseStatus)
}

/// Sits in front of the HTTP decoder and counts raw bytes of each request head, so that an
/// oversized request line (→ 414) or header block (→ 431) is caught as soon as it crosses the
/// configured limit, long before llhttp's own ~80 KB limit, and without buffering it.
///
/// It also tells when a read ends inside a request head (``HTTPRequestLimitEvent/requestStarted``),
/// which drives the read (slowloris) timeout. A request whose head arrives whole within one read
/// needs no such event: its head reaches the connection handler in that same read, and an event
/// sent through the pipeline for every request was ~7 % of a keep-alive probe's instructions.
/// Requests carry no body here (the connection handler rejects any body and stops reading), so the
/// end of a header block is the end of a request.
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

    /// What a read leads to: its first `forward` bytes passed on, then `event` if any.
    private struct Outcome {
        var forward: Int
        var event: HTTPRequestLimitEvent?
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
        let outcome = buffer.withUnsafeReadableBytes { self.scan($0) }
        if outcome.forward == buffer.readableBytes {
            context.fireChannelRead(data)
        } else if outcome.forward > 0 {
            context.fireChannelRead(Self.wrapInboundOut(buffer.getSlice(at: buffer.readerIndex, length: outcome.forward)!))
        }
        if let event = outcome.event {
            context.fireUserInboundEventTriggered(event)
        }
    }

    /// Advances the state over `bytes`: all of them are passed on, unless a limit is exceeded (then
    /// the bytes of the request that exceeds it are not); a read that ends inside a request head
    /// reports its start.
    private func scan(_ bytes: UnsafeRawBufferPointer) -> Outcome {
        // Where the request in progress started in this read (nil: in an earlier one, or none).
        var requestStart: Int?
        let cr = UInt8(ascii: "\r")
        let lf = UInt8(ascii: "\n")
        for (index, byte) in bytes.enumerated() {
            switch self.state {
            case .failed:
                preconditionFailure("a failed scan returns at once")
            case .betweenRequests:
                if byte == cr || byte == lf { continue }
                requestStart = index
                self.state = .requestLine(bytes: 1)
                if 1 > self.maxRequestLineBytes {
                    return self.exceeded(.uriTooLong, requestStart: requestStart)
                }
            case .requestLine(let count):
                if byte == lf {
                    self.state = .headers(bytes: 0, lineBytes: 0)
                } else if byte != cr {
                    if count + 1 > self.maxRequestLineBytes {
                        return self.exceeded(.uriTooLong, requestStart: requestStart)
                    }
                    self.state = .requestLine(bytes: count + 1)
                }
            case .headers(let count, let lineBytes):
                if count + 1 > self.maxHeaderBytes {
                    return self.exceeded(.requestHeaderFieldsTooLarge, requestStart: requestStart)
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
        let endsInsideAHead = self.state != .betweenRequests && requestStart != nil
        return Outcome(forward: bytes.count, event: endsInsideAHead ? .requestStarted : nil)
    }

    /// Drops the bytes of the request over the limit from this read (only complete earlier
    /// requests, already passed on, are answered before the error) and stops.
    private func exceeded(_ status: HTTPResponseStatus, requestStart: Int?) -> Outcome {
        self.state = .failed
        return Outcome(forward: requestStart ?? 0, event: .limitExceeded(status))
    }
}
