extension ZoneRuntime {
    /// Reaps the inits of zones this process started that have exited (a long-lived caller,
    /// vmadmd, calls it from time to time; the CLI exits and init adopts them).
    public static func reapExitedInits() { Reaper.shared.reap() }
}
