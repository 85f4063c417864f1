/// What a blocking C client library decides for an ``OwnedConnection``: how to open and close one
/// connection, and how its failures read.
///
/// Every method runs on the owner thread.
public protocol ConnectionDriver: Sendable {
    /// The library's connection (`PGconn *`, a `RedisLink`).
    associatedtype Handle
    /// The library's error.
    associatedtype Failure: Error

    /// Opens a connection: blocks, bounded by the library's connect timeout.
    func connect() throws(Failure) -> Handle
    /// Closes and frees a connection, without blocking.
    func disconnect(_ handle: Handle)
    /// Whether `failure` left the connection unusable: it is then closed, and the next call
    /// reconnects.
    func dropsConnection(_ failure: Failure) -> Bool
    /// Whether `failure` is a timeout: calls queued before it then fail with it at once.
    func isTimeout(_ failure: Failure) -> Bool
    /// The failure of `call`, which was queued before the timeout `failure` and is not sent.
    func failure(_ call: String, queuedBehind timeout: Failure) -> Failure
    /// The failure of every call once the connection is shut down.
    var shutDownFailure: Failure { get }
}
