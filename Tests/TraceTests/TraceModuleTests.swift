import Testing
@testable import Trace

@Test func moduleIsNamed() {
    #expect(TraceModule.name == "Trace")
}
