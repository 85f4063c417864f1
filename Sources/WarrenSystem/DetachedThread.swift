import Glibc

/// Starts a detached OS thread running `body`: C calls that block belong on such a thread, never
/// on Swift's cooperative pool.
///
/// - Returns: 0, or the `pthread_create` error code; `body` then never runs (and is released).
@discardableResult
public func startDetachedThread(_ body: @escaping @Sendable () -> Void) -> Int32 {
    final class Box {
        let body: @Sendable () -> Void
        init(_ body: @escaping @Sendable () -> Void) { self.body = body }
    }
    let context = Unmanaged.passRetained(Box(body)).toOpaque()
    var attributes = pthread_attr_t()
    pthread_attr_init(&attributes)
    defer { pthread_attr_destroy(&attributes) }
    pthread_attr_setdetachstate(&attributes, Int32(PTHREAD_CREATE_DETACHED))
    var thread = pthread_t()
    let rc = pthread_create(&thread, &attributes, { raw in
        Unmanaged<Box>.fromOpaque(raw!).takeRetainedValue().body()
        return nil
    }, context)
    if rc != 0 { Unmanaged<Box>.fromOpaque(context).release() }
    return rc
}
