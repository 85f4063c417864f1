import NIOCore
import Synchronization

/// Counters of the server's connections.
public struct HTTPServerStatistics: Sendable, Hashable {
    /// Connections open now.
    public var activeConnections: Int
    /// Connections admitted since start.
    public var acceptedConnections: Int
    /// Connections closed at once because ``HTTPServerConfiguration/maxConnections`` were open
    /// (or the server was shutting down).
    public var rejectedConnections: Int

    /// Creates statistics.
    public init(activeConnections: Int = 0, acceptedConnections: Int = 0, rejectedConnections: Int = 0) {
        self.activeConnections = activeConnections
        self.acceptedConnections = acceptedConnections
        self.rejectedConnections = rejectedConnections
    }
}

/// The open connections of one server: admission against the limit, and the list that
/// graceful shutdown asks to finish.
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
