import Glibc

/// A non-blocking pipe that wakes the owner thread from poll() when Swift tasks queue work.
/// Both ends close in deinit, so a write after the owner thread stopped is harmless.
final class WakePipe: Sendable {
    /// The end the owner thread polls.
    let readFD: Int32
    private let writeFD: Int32

    /// - Parameter makePipe: `pipe(2)`; tests pass one that fails.
    /// - Throws: ``AMQPError`` `connectFailed` when no pipe can be made (out of file descriptors).
    init(makePipe: (UnsafeMutablePointer<Int32>) -> Int32 = { pipe($0) }) throws(AMQPError) {
        var fds: (Int32, Int32) = (-1, -1)
        let rc = withUnsafeMutableBytes(of: &fds) { makePipe($0.baseAddress!.assumingMemoryBound(to: Int32.self)) }
        guard rc == 0 else {
            let code = errno
            throw AMQPError(.connectFailed, "could not create the connection's wake-up pipe: \(String(cString: strerror(code)))")
        }
        for fd in [fds.0, fds.1] {
            _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK)
            _ = fcntl(fd, F_SETFD, FD_CLOEXEC)
        }
        readFD = fds.0
        writeFD = fds.1
    }

    deinit {
        close(readFD)
        close(writeFD)
    }

    /// Makes `readFD` readable.
    func signal() {
        var byte: UInt8 = 1
        _ = write(writeFD, &byte, 1)
    }

    /// Empties the pipe, after a ``signal()``.
    func drain() {
        var buffer: (UInt64, UInt64) = (0, 0)
        while read(readFD, &buffer, 16) > 0 {}
    }
}
