"""Self-managed TLS rotation decisions, with explicit clocks and no I/O."""

import datetime
from collections.abc import Callable

import pytest
from cryptography import x509

from app.certs import Pem, make_ca, make_serving
from app.domain.rotation import (
    Bundle,
    Lifetimes,
    Rotation,
    next_bundle,
    service_sans,
    split_certificates,
)
from tests import tlscheck

T0 = datetime.datetime(2030, 1, 1, tzinfo=datetime.UTC)
DAY = datetime.timedelta(days=1)
# The CA is renewed when less than 10 days remain, the serving certificate under 3 days.
LIFETIMES = Lifetimes(ca=30 * DAY, serving=9 * DAY)
SANS = service_sans("configpin", "configpin-system")
HOST = "configpin.configpin-system.svc"


def step(bundle: Bundle | None, now: datetime.datetime, sans: list[str] = SANS) -> Rotation:
    return next_bundle(bundle, now, sans, LIFETIMES)


def cert(pem: bytes) -> x509.Certificate:
    return x509.load_pem_x509_certificate(pem)


def verifies(serving: Pem, ca_bundle: bytes, now: datetime.datetime) -> bool:
    return tlscheck.verifies(serving.cert, ca_bundle, now, HOST)


def issued_by(serving: Pem, ca: Pem) -> bool:
    try:
        cert(serving.cert).verify_directly_issued_by(cert(ca.cert))
    except Exception:
        return False
    return True


def steady_bundle(ca_at: datetime.datetime, serving_at: datetime.datetime) -> Bundle:
    """A published CA made at `ca_at` and a serving certificate from it made at `serving_at`."""
    ca = make_ca("test-ca", ca_at, LIFETIMES.ca)
    return Bundle(ca, make_serving(ca, SANS, serving_at, LIFETIMES.serving), (ca.cert,))


def test_first_start_makes_a_ca_and_a_serving_certificate() -> None:
    rotation = step(None, T0)

    assert rotation.new_ca and rotation.new_serving and rotation.ca_bundle_changed
    bundle = rotation.bundle
    assert bundle.trusted == (bundle.ca.cert,)
    assert issued_by(bundle.serving, bundle.ca)
    assert verifies(bundle.serving, bundle.ca_bundle, T0)
    assert cert(bundle.serving.cert).not_valid_after_utc == T0 + LIFETIMES.serving
    assert cert(bundle.ca.cert).not_valid_after_utc == T0 + LIFETIMES.ca


def test_a_bundle_in_steady_state_changes_nothing() -> None:
    bundle = step(None, T0).bundle
    for offset in (DAY, 5 * DAY, 5.9 * DAY):
        rotation = step(bundle, T0 + offset)
        assert not rotation.changed, rotation.reasons
        assert rotation.bundle == bundle
        assert rotation.reasons == ()


def test_sans_in_another_order_or_case_change_nothing() -> None:
    bundle = step(None, T0).bundle
    assert not step(bundle, T0 + DAY, [name.upper() for name in reversed(SANS)]).changed


def test_a_serving_certificate_near_expiry_is_renewed_by_the_same_ca() -> None:
    bundle = step(None, T0).bundle
    now = T0 + 6.5 * DAY  # 2.5 of 9 days left: under a third

    rotation = step(bundle, now)

    assert rotation.new_serving and not rotation.new_ca and not rotation.ca_bundle_changed
    assert rotation.bundle.ca == bundle.ca and rotation.bundle.trusted == bundle.trusted
    assert rotation.bundle.serving != bundle.serving
    assert issued_by(rotation.bundle.serving, bundle.ca)
    assert cert(rotation.bundle.serving.cert).not_valid_after_utc == now + LIFETIMES.serving
    assert rotation.reasons == ("the serving certificate expires soon",)


def test_changed_sans_renew_the_serving_certificate() -> None:
    bundle = step(None, T0).bundle
    wanted = [*SANS, "10.0.0.7"]

    rotation = step(bundle, T0 + DAY, wanted)

    assert rotation.new_serving and not rotation.new_ca
    alt = cert(rotation.bundle.serving.cert).extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    assert set(alt.value.get_values_for_type(x509.DNSName)) == set(SANS)
    assert [str(ip) for ip in alt.value.get_values_for_type(x509.IPAddress)] == ["10.0.0.7"]
    assert not step(rotation.bundle, T0 + DAY, wanted).changed


def test_a_serving_certificate_from_another_ca_is_replaced() -> None:
    bundle = step(None, T0).bundle
    stranger = make_ca("stranger", T0, LIFETIMES.ca)
    foreign = Bundle(bundle.ca, make_serving(stranger, SANS, T0), bundle.trusted)

    rotation = step(foreign, T0 + DAY)

    assert rotation.new_serving and not rotation.new_ca and not rotation.ca_bundle_changed
    assert rotation.reasons == ("the serving certificate is not signed by the current CA",)
    assert issued_by(rotation.bundle.serving, bundle.ca)


def test_a_serving_key_that_does_not_match_is_replaced() -> None:
    bundle = step(None, T0).bundle
    other_key = step(None, T0).bundle.serving.key
    mismatched = Bundle(bundle.ca, Pem(bundle.serving.cert, other_key), bundle.trusted)

    assert step(mismatched, T0 + DAY).new_serving


def test_ca_rotation_publishes_the_new_ca_before_the_serving_certificate_uses_it() -> None:
    old = steady_bundle(T0, T0 + 19 * DAY)
    now = T0 + 21 * DAY  # 9 of 30 days left on the CA: under a third

    first = step(old, now)
    assert first.new_ca and first.ca_bundle_changed and not first.new_serving
    assert first.bundle.trusted == (old.ca.cert, first.bundle.ca.cert)
    assert first.bundle.serving == old.serving  # still signed by the old CA
    assert first.reasons == ("the CA expires soon",)

    second = step(first.bundle, now + datetime.timedelta(minutes=1))
    assert second.new_serving and not second.new_ca and not second.ca_bundle_changed
    assert second.bundle.ca == first.bundle.ca
    assert issued_by(second.bundle.serving, first.bundle.ca)
    # Trusted through the bundle published on the step before.
    assert verifies(second.bundle.serving, first.bundle.ca_bundle, now)

    assert not step(second.bundle, now + 2 * DAY).changed


def test_an_expired_ca_leaves_the_bundle() -> None:
    old = steady_bundle(T0, T0 + 19 * DAY)
    first = step(old, T0 + 21 * DAY)
    second = step(first.bundle, T0 + 21 * DAY)
    still_valid = step(second.bundle, T0 + 29 * DAY)
    assert still_valid.bundle.trusted == (old.ca.cert, first.bundle.ca.cert)

    after_expiry = step(still_valid.bundle, T0 + 30 * DAY + datetime.timedelta(seconds=1))

    assert after_expiry.ca_bundle_changed and not after_expiry.new_ca
    assert after_expiry.bundle.trusted == (first.bundle.ca.cert,)
    assert after_expiry.bundle.ca == first.bundle.ca
    assert after_expiry.reasons == ("expired or unreadable certificates leave the caBundle",)


def test_a_serving_renewal_during_ca_rotation_uses_the_trusted_old_ca() -> None:
    """Both due on the same step: the new serving certificate comes from the CA the API
    server trusts already, valid no longer than that CA, and moves on a step later."""
    old = steady_bundle(T0, T0 + 14 * DAY)  # the serving certificate ends on day 23
    now = T0 + 21 * DAY

    first = step(old, now)

    assert first.new_ca and first.new_serving
    assert issued_by(first.bundle.serving, old.ca)
    assert cert(first.bundle.serving.cert).not_valid_after_utc <= (
        cert(old.ca.cert).not_valid_after_utc
    )
    assert verifies(first.bundle.serving, old.ca_bundle, now)

    second = step(first.bundle, now)
    assert second.new_serving and issued_by(second.bundle.serving, first.bundle.ca)


def test_a_serving_certificate_never_outlives_its_issuer() -> None:
    old = steady_bundle(T0, T0 + 14 * DAY)
    first = step(old, T0 + 28 * DAY)  # the old CA has 2 days left, less than 9

    assert issued_by(first.bundle.serving, old.ca)
    assert cert(first.bundle.serving.cert).not_valid_after_utc == (
        cert(old.ca.cert).not_valid_after_utc
    )


def test_after_everything_expired_a_new_ca_signs_at_once() -> None:
    """No trusted CA is left to bridge the switch (the webhook was down for months)."""
    old = steady_bundle(T0, T0)
    now = T0 + 90 * DAY

    rotation = step(old, now)

    assert rotation.new_ca and rotation.new_serving and rotation.ca_bundle_changed
    assert rotation.bundle.trusted == (rotation.bundle.ca.cert,)
    assert verifies(rotation.bundle.serving, rotation.bundle.ca_bundle, now)


@pytest.mark.parametrize(
    "damage",
    [
        lambda b: Bundle(Pem(b"junk", b"junk"), b.serving, b.trusted),
        lambda b: Bundle(Pem(b.ca.cert, b"-----BEGIN PRIVATE KEY-----\n"), b.serving, b.trusted),
        lambda b: Bundle(Pem(b.ca.cert, step(None, T0).bundle.ca.key), b.serving, b.trusted),
    ],
    ids=["unreadable", "truncated key", "key of another CA"],
)
def test_an_unusable_ca_is_replaced(damage: Callable[[Bundle], Bundle]) -> None:
    damaged = damage(step(None, T0).bundle)

    rotation = step(damaged, T0 + DAY)

    assert rotation.new_ca and rotation.new_serving
    assert issued_by(rotation.bundle.serving, rotation.bundle.ca)
    assert rotation.bundle.ca.cert in rotation.bundle.trusted
    assert verifies(rotation.bundle.serving, rotation.bundle.ca_bundle, T0 + DAY)


def test_a_ca_missing_from_the_bundle_is_added_back() -> None:
    bundle = step(None, T0).bundle

    rotation = step(Bundle(bundle.ca, bundle.serving, ()), T0 + DAY)

    assert rotation.ca_bundle_changed and not rotation.new_ca and not rotation.new_serving
    assert rotation.bundle.trusted == (bundle.ca.cert,)


def test_unreadable_trusted_entries_are_dropped() -> None:
    bundle = step(None, T0).bundle
    rotation = step(Bundle(bundle.ca, bundle.serving, (b"junk", *bundle.trusted)), T0 + DAY)
    assert rotation.bundle.trusted == bundle.trusted


def test_a_full_ca_rotation_step_by_step_stays_trusted() -> None:
    """Twice through the CA's life in 12-hour steps: at every step the serving certificate
    is signed by a CA in the bundle published on that step and on the one before."""
    now, bundle = T0, None
    published: bytes | None = None
    new_cas = new_servings = 0
    while now < T0 + 75 * DAY:
        rotation = step(bundle, now)
        bundle = rotation.bundle
        new_cas += rotation.new_ca
        new_servings += rotation.new_serving
        assert verifies(bundle.serving, bundle.ca_bundle, now), (now, rotation.reasons)
        if published is not None:
            assert verifies(bundle.serving, published, now), (now, rotation.reasons)
        assert len(bundle.trusted) <= 2
        published = bundle.ca_bundle
        now += DAY / 2
    assert new_cas == 4  # days 0, 20.5, 41 and 61.5
    assert new_servings > 10


def test_split_certificates() -> None:
    one, two = step(None, T0).bundle.ca.cert, step(None, T0).bundle.ca.cert
    assert split_certificates(one + two) == (one, two)
    assert split_certificates(b"") == ()
    assert split_certificates(b"junk") == ()


def test_lifetimes_are_checked() -> None:
    with pytest.raises(ValueError, match="shorter"):
        Lifetimes(ca=DAY, serving=2 * DAY)
    with pytest.raises(ValueError, match="between"):
        Lifetimes(renew_fraction=1.5)


def test_now_must_carry_a_timezone() -> None:
    with pytest.raises(ValueError, match="timezone"):
        next_bundle(None, datetime.datetime(2030, 1, 1), SANS)
