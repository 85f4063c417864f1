import Glibc

/// Debug-build check that a thread-confined object is only used from one thread.
struct ThreadConfinement {
    private var owner: pthread_t?

    mutating func check() {
        #if DEBUG
        let current = pthread_self()
        if let owner {
            precondition(pthread_equal(owner, current) != 0, "used off its owner thread")
        } else {
            owner = current
        }
        #endif
    }
}
