import Logging
import NIOCore
import NIOHTTP1

/// The pipeline of an admitted side-port connection, head to tail:
///
/// 1. ``HTTPRequestLimitHandler`` (ours): counts raw bytes of each request head and reports
///    414/431 and request starts. NIO's decoder cannot stand in for it:
///    `NIOHTTPDecoderLimitConfiguration` bounds header fields only (nothing bounds the request
///    line, which the decoder accumulates), its overflow is a plain parse error (so 400, not 431),
///    and the decoder says nothing about where a request starts, which the read timeout needs.
/// 2. From NIO's `configureHTTPServerPipeline`: `HTTPResponseEncoder`, the request decoder (its
///    limits are only a backstop here), `HTTPServerPipelineHandler` (hands pipelined requests over
///    one at a time and reads no more until the response is written; holds a parse error until
///    the responses before it are out; quiescing; half-closure) and
///    `NIOHTTPResponseHeadersValidator` (no response splitting through a handler's headers).
/// 3. ``HTTPConnectionHandler`` (ours): routing, the 400 on a parse error, limits on the parsed
///    request (505, 413), the idle/read/linger timers, lingering close, and async handlers'
///    responses coming back in order.
///
/// Not used, and why:
/// - `HTTPServerProtocolErrorHandler` (`withErrorHandling`): it answers every parse error, also
///   one the decoder raises while the channel is closing (a partial request is parsed to EOF in
///   `channelInactive`, e.g. when quiescing closes a connection mid-request). That 400 goes into a
///   closed channel, after `HTTPServerPipelineHandler` has finished quiescing, which it asserts
///   against (a crash in debug builds). ``HTTPConnectionHandler`` answers only while the channel is
///   active and not closing, with the same JSON error body as the other errors.
/// - `IdleStateHandler` for the idle timeout: it measures with the wall clock (`NIODeadline.now()`)
///   but schedules on the loop, so an `EmbeddedEventLoop` cannot drive it, and it cannot tell an
///   idle connection from one waiting for a slow async handler (the handler would have to filter
///   its events anyway). The read (slowloris) timeout is a deadline for a whole request, which no
///   NIO handler offers. Both are one timer in ``HTTPConnectionHandler``.
/// - NIOExtras' `ServerQuiescingHelper`: see ``ConnectionRegistry``.
enum HTTPConnectionPipeline {
    /// Adds the handlers of an admitted connection; must run on the channel's event loop.
    static func configure(
        _ pipeline: ChannelPipeline.SynchronousOperations,
        configuration: HTTPServerConfiguration,
        router: HTTPRouter,
        gate: EventLoopGate,
        logger: Logger
    ) throws {
        // Backstop only: HTTPRequestLimitHandler enforces the real limits on raw bytes first.
        var decoderLimits = NIOHTTPDecoderLimitConfiguration()
        decoderLimits.maxHeaderListSize = configuration.maxHeaderBytes + configuration.maxRequestLineBytes
        decoderLimits.maxHeaderFieldSize = decoderLimits.maxHeaderListSize

        try pipeline.addHandler(
            HTTPRequestLimitHandler(
                maxRequestLineBytes: configuration.maxRequestLineBytes,
                maxHeaderBytes: configuration.maxHeaderBytes
            )
        )
        try pipeline.configureHTTPServerPipeline(
            withPipeliningAssistance: true,
            withErrorHandling: false,
            withOutboundHeaderValidation: true,
            withEncoderConfiguration: HTTPResponseEncoder.Configuration(),
            withDecoderLimitConfiguration: decoderLimits
        )
        try pipeline.addHandler(
            HTTPConnectionHandler(router: router, configuration: configuration, gate: gate, logger: logger)
        )
    }
}
