import Testing
@testable import Net

@Test func moduleIsNamed() {
    #expect(NetModule.name == "Net")
}
