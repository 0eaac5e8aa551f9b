"""Self-managed TLS rotation at its boundaries: the exact instants of renewal and expiry,
the reasons logged, unreadable serving certificates, and SANs written differently."""

import dataclasses

import pytest

from app.certs import make_ca, make_serving
from app.domain.rotation import Bundle, Lifetimes, next_bundle
from tests.test_rotation import DAY, LIFETIMES, SANS, T0, cert, issued_by, steady_bundle, step

SECOND = DAY / 86400


class TestLifetimes:
    @pytest.mark.parametrize("fraction", [0, 1, 1.5, -0.1])
    def test_the_renewal_fraction_lies_strictly_between_0_and_1(self, fraction: float) -> None:
        with pytest.raises(ValueError, match=r"^renew_fraction must be between 0 and 1$"):
            Lifetimes(renew_fraction=fraction)

    @pytest.mark.parametrize("serving", [0 * DAY, 30 * DAY, 31 * DAY])
    def test_the_serving_validity_is_positive_and_shorter_than_the_cas(
        self, serving: object
    ) -> None:
        message = r"^the serving validity must be positive and shorter than the CA's$"
        with pytest.raises(ValueError, match=message):
            Lifetimes(ca=30 * DAY, serving=serving)  # type: ignore[arg-type]

    def test_renewal_starts_strictly_after_the_threshold(self) -> None:
        lifetimes = Lifetimes(ca=30 * DAY, serving=10 * DAY, renew_fraction=0.5)
        ca = cert(make_ca("c", T0, 30 * DAY).cert)
        serving = cert(make_serving(make_ca("c", T0, 30 * DAY), ["a"], T0, 10 * DAY).cert)
        assert not lifetimes.renew_ca(ca, T0 + 15 * DAY)  # exactly half left
        assert lifetimes.renew_ca(ca, T0 + 15 * DAY + SECOND)
        assert not lifetimes.renew_serving(serving, T0 + 5 * DAY)
        assert lifetimes.renew_serving(serving, T0 + 5 * DAY + SECOND)


class TestArguments:
    def test_now_must_carry_a_timezone(self) -> None:
        with pytest.raises(ValueError, match=r"^now must be timezone-aware$"):
            next_bundle(None, T0.replace(tzinfo=None), SANS)

    def test_at_least_one_san(self) -> None:
        with pytest.raises(ValueError, match=r"^a serving certificate needs at least one SAN$"):
            next_bundle(None, T0, [])


class TestReasons:
    def test_first_start(self) -> None:
        assert step(None, T0).reasons == ("no usable CA", "no usable serving certificate")

    def test_a_ca_that_expires_soon(self) -> None:
        bundle = steady_bundle(T0, T0)
        assert step(bundle, T0 + 21 * DAY).reasons[0] == "the CA expires soon"

    def test_other_hosts(self) -> None:
        rotation = step(steady_bundle(T0, T0), T0 + DAY, [*SANS[:3], "elsewhere.example"])
        assert rotation.reasons == ("the serving certificate names other hosts",)
        assert rotation.new_serving

    def test_an_unreadable_serving_certificate_is_replaced(self) -> None:
        bundle = steady_bundle(T0, T0)
        damaged = dataclasses.replace(
            bundle, serving=dataclasses.replace(bundle.serving, cert=b"not a certificate")
        )
        rotation = step(damaged, T0 + DAY)
        assert rotation.reasons == ("no usable serving certificate",)
        assert issued_by(rotation.bundle.serving, bundle.ca)


class TestExpiryInstant:
    def test_a_ca_is_unusable_and_leaves_the_bundle_at_the_instant_it_expires(self) -> None:
        bundle = steady_bundle(T0, T0)
        expiry = cert(bundle.ca.cert).not_valid_after_utc
        before = step(bundle, expiry - SECOND)
        assert before.reasons[0] == "the CA expires soon"
        assert bundle.ca.cert in before.bundle.trusted
        at = step(bundle, expiry)
        assert at.reasons[0] == "no usable CA"
        assert bundle.ca.cert not in at.bundle.trusted


class TestSans:
    def test_an_ip_address_written_another_way_is_the_same_san(self) -> None:
        bundle = steady_bundle(T0, T0)
        serving = make_serving(bundle.ca, [*SANS, "::1"], T0, 9 * DAY)
        bundle = Bundle(bundle.ca, serving, bundle.trusted)
        assert not step(bundle, T0 + DAY, [*SANS, "0:0:0:0:0:0:0:1"]).changed


class TestUntrustedCa:
    def test_a_ca_renewed_while_the_old_one_is_not_published_signs_at_once(self) -> None:
        # Nothing trusts the old CA any more: waiting for the new one to be published
        # first would gain nothing, so the new CA signs the serving certificate now.
        published = make_ca("published", T0, LIFETIMES.ca)
        bundle = dataclasses.replace(steady_bundle(T0, T0), trusted=(published.cert,))
        rotation = step(bundle, T0 + 21 * DAY)
        assert rotation.new_ca and rotation.bundle.ca != bundle.ca
        assert issued_by(rotation.bundle.serving, rotation.bundle.ca)
