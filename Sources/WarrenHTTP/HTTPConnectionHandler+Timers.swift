import NIOCore

/// The idle and read timers of an HTTP connection: a silent keep-alive connection is closed after the
/// idle timeout, a request that does not arrive in full within the read timeout (slowloris) too.
extension HTTPConnectionHandler {
    func updateIdleTimer(context: ChannelHandlerContext) {
        let idle = !self.closing && !self.inputClosed && !self.requestInProgress && !self.responding
            && self.queue.isEmpty
        if idle {
            guard self.idleTimer == nil else { return }
            self.idleTimer = context.eventLoop.assumeIsolated().scheduleTask(in: self.configuration.idleTimeout) {
                self.idleTimer = nil
                self.logger.debug("idle timeout, closing connection")
                self.closing = true
                context.close(promise: nil)
            }
        } else {
            self.cancelIdleTimer()
        }
    }

    func armReadTimer(context: ChannelHandlerContext) {
        self.readTimer?.cancel()
        self.readTimer = context.eventLoop.assumeIsolated().scheduleTask(in: self.configuration.readTimeout) {
            self.readTimer = nil
            if self.readsPaused {
                // The request is incomplete because this side stopped reading (too many queued).
                self.armReadTimer(context: context)
                return
            }
            self.logger.info("read timeout: request incomplete, closing connection")
            self.closing = true
            context.close(promise: nil)
        }
    }

    func cancelIdleTimer() {
        self.idleTimer?.cancel()
        self.idleTimer = nil
    }

    func cancelReadTimer() {
        self.readTimer?.cancel()
        self.readTimer = nil
    }

    func cancelTimers() {
        self.cancelIdleTimer()
        self.cancelReadTimer()
        self.lingerTimer?.cancel()
        self.lingerTimer = nil
    }
}
