import NIOCore
import Synchronization

/// Counters of the server's connections.
struct HTTPServerStatistics: Sendable, Hashable {
    /// Connections open now.
    var activeConnections: Int
    /// Connections admitted since start.
    var acceptedConnections: Int
    /// Connections closed at once because ``HTTPServerConfiguration/maxConnections`` were open
    /// (or the server was shutting down).
    var rejectedConnections: Int

}

/// The open connections of one server: admission against the limit, and the list that
/// graceful shutdown asks to finish.
///
/// Not NIOExtras' `ServerQuiescingHelper`: it collects the children and quiesces them too, but
/// it neither admits (``HTTPServerConfiguration/maxConnections``) nor counts, and it keeps its list
/// to itself, so the forced close after ``HTTPServerConfiguration/shutdownTimeout`` would still need
/// this registry: the helper would be a second list of the same channels. What it would do with
/// them (close the listener, send `ChannelShouldQuiesceEvent`, wait for the children to close) is
/// the few lines of `HTTPServer.drain`; the per-connection part, NIO's `HTTPServerPipelineHandler`,
/// is used.
final class ConnectionRegistry: Sendable {
    private struct State {
        var channels: [ObjectIdentifier: any Channel] = [:]
        var accepted = 0
        var rejected = 0
        var shuttingDown = false
    }

    private let state = Mutex(State())

    /// Admits `channel` when fewer than `limit` are open and the server is not shutting down;
    /// otherwise counts it as rejected.
    func admit(_ channel: any Channel, limit: Int) -> Bool {
        self.state.withLock { state in
            guard !state.shuttingDown, state.channels.count < limit else {
                state.rejected += 1
                return false
            }
            state.channels[ObjectIdentifier(channel)] = channel
            state.accepted += 1
            return true
        }
    }

    /// Forgets a closed channel.
    func remove(_ channel: any Channel) {
        _ = self.state.withLock { $0.channels.removeValue(forKey: ObjectIdentifier(channel)) }
    }

    /// Refuses every later connection and returns those open now.
    func beginShutdown() -> [any Channel] {
        self.state.withLock { state in
            state.shuttingDown = true
            return Array(state.channels.values)
        }
    }

    var statistics: HTTPServerStatistics {
        self.state.withLock { state in
            HTTPServerStatistics(
                activeConnections: state.channels.count,
                acceptedConnections: state.accepted,
                rejectedConnections: state.rejected
            )
        }
    }
}

/// Installed instead of the HTTP handlers on a connection over the limit: closes it as soon as
/// it is active, before anything is read.
final class RejectConnectionHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    func channelActive(context: ChannelHandlerContext) {
        context.close(promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {}
}
