import Testing
@testable import Zones

@Test func moduleIsNamed() {
    #expect(ZonesModule.name == "Zones")
}
