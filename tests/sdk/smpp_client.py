"""python-smpplib (PyPI, pinned), an SMPP client nobody here wrote, bound to
stopgate's SMPP listener as an application would.

Run by tests/api/smpp_front.rs with the virtualenv from
scripts/install-test-deps.sh. Prints one JSON object per line, one per case;
the Rust test asserts on them and on what the upstream mock received.

Environment: SMPP_HOST, SMPP_PORT, SYSTEM_ID, PASSWORD, SCENARIO (main,
receipt, receipts_later, throttle, tls), OPTED_OUT (a number opted out from
this tenant), CA_FILE (tls: the certificate to trust).

receipts_later is a conversation: after each of its "submitted_live" and
"unbound" lines it waits for a line on stdin, once the test has posted the
provider's delivery report.
"""

import json
import os
import socket
import ssl
import sys

import smpplib.client
import smpplib.consts as c
import smpplib.exceptions
import smpplib.gsm
import smpplib.smpp

HOST = os.environ["SMPP_HOST"]
PORT = int(os.environ["SMPP_PORT"])
SYSTEM_ID = os.environ["SYSTEM_ID"]
PASSWORD = os.environ["PASSWORD"]
OPTED_OUT = os.environ.get("OPTED_OUT", "")


def out(case, **fields):
    print(json.dumps({"case": case, **fields}), flush=True)


def client(ssl_context=None):
    cl = smpplib.client.Client(HOST, PORT, timeout=10, allow_unknown_opt_params=True,
                               ssl_context=ssl_context)
    cl.connect()
    return cl


def read_until(cl, command):
    """The next PDU named `command`, answering what the SMSC asks meanwhile."""
    for _ in range(50):
        p = cl.read_pdu()
        if p.command == command:
            return p
        if p.command == "enquire_link":
            cl._enquire_link_received(p)
    raise RuntimeError("no " + command)


def submit(cl, parts, **kwargs):
    """Sends every part, then reads as many submit_sm_resp: (status, message_id) each."""
    for part in parts:
        cl.send_message(short_message=part, **kwargs)
    answers = []
    for _ in parts:
        r = read_until(cl, "submit_sm_resp")
        answers.append({"status": r.status, "message_id": (r.message_id or b"").decode()})
    return answers


def international(number):
    return dict(dest_addr_ton=c.SMPP_TON_INTL, dest_addr_npi=c.SMPP_NPI_ISDN,
                destination_addr=number.lstrip("+"))


ALPHA = dict(source_addr_ton=c.SMPP_TON_ALNUM, source_addr_npi=c.SMPP_NPI_UNK, source_addr="ACME")


def bind_error(mode, system_id, password):
    cl = client()
    try:
        getattr(cl, mode)(system_id=system_id, password=password)
        return {"status": 0}
    except smpplib.exceptions.PDUError as e:
        return {"status": e.args[1]}
    finally:
        cl.disconnect()


def text(t):
    """One GSM part, as smpplib encodes it (data_coding 0, one septet per octet)."""
    parts, encoding, esm_class = smpplib.gsm.make_parts(t)
    return parts, dict(data_coding=encoding, esm_class=esm_class)


def main():
    out("bad_password", **bind_error("bind_transmitter", SYSTEM_ID, "wrong"))
    out("bad_system_id", **bind_error("bind_transmitter", "nobody", PASSWORD))

    cl = client()
    r = cl.bind_transceiver(system_id=SYSTEM_ID, password=PASSWORD)
    out("bind", status=r.status, system_id=r.system_id.decode())

    parts, coding = text("Soldes -50% ce week-end !")
    out("marketing_fr", answers=submit(cl, parts, **ALPHA, **international("+33612345678"), **coding))
    parts, coding = text("Black Friday: 50% off")
    out("marketing_us", answers=submit(cl, parts, **ALPHA, **international("+12125550123"), **coding))
    parts, coding = text("Your code: 482913")
    out("otp", answers=submit(cl, parts, service_type="OTP", **ALPHA,
                              **international("+33611111111"), **coding))
    # Sender rule: ACMEOTP is configured as otp for this tenant.
    parts, coding = text("Code 771234")
    out("otp_by_sender", answers=submit(cl, parts, source_addr_ton=c.SMPP_TON_ALNUM,
                                        source_addr_npi=c.SMPP_NPI_UNK, source_addr="ACMEOTP",
                                        **international("+33622222222"), **coding))

    # 150 Cyrillic characters: UCS-2, three parts with an 8-bit reference UDH.
    long_text = ("Привет, это длинное сообщение! " * 5)[:150]
    parts, encoding, esm_class = smpplib.gsm.make_parts(long_text)
    out("ucs2_parts", count=len(parts), encoding=encoding,
        answers=submit(cl, parts, **ALPHA, **international("+33633333333"),
                       data_coding=encoding, esm_class=esm_class))

    # A 16-bit reference, parts sent last first (GSM, unpacked septets).
    gsm = smpplib.gsm.gsm_encode("Deux parties, reference sur 16 bits: " + "x" * 150)
    chunks = [gsm[:153], gsm[153:]]
    udh = [b"\x06\x08\x04\x12\x34\x02" + bytes([i + 1]) for i in range(2)]
    wide = [udh[1] + chunks[1], udh[0] + chunks[0]]
    out("udh16", answers=submit(cl, wide, **ALPHA, **international("+33644444444"),
                                data_coding=0, esm_class=c.SMPP_GSMFEAT_UDHI))

    # SAR TLVs instead of a UDH.
    sar = smpplib.gsm.gsm_encode("Trois morceaux en SAR: " + "y" * 300)
    pieces = [sar[i:i + 134] for i in range(0, len(sar), 134)]
    for i, piece in enumerate(pieces):
        cl.send_message(short_message=piece, **ALPHA, **international("+33655555555"),
                        data_coding=0, sar_msg_ref_num=777, sar_total_segments=len(pieces),
                        sar_segment_seqnum=i + 1)
    out("sar", count=len(pieces),
        answers=[{"status": read_until(cl, "submit_sm_resp").status} for _ in pieces])

    # message_payload: the whole text in one PDU.
    cl.send_message(short_message=None, message_payload=smpplib.gsm.gsm_encode("Payload " + "z" * 200),
                    **ALPHA, **international("+33666666666"), data_coding=0)
    out("payload", answers=[{"status": read_until(cl, "submit_sm_resp").status}])

    parts, coding = text("Soldes -50% ce week-end !")
    out("blocked", answers=submit(cl, parts, **ALPHA, **international(OPTED_OUT), **coding))

    # A national number: no country to resolve it with.
    parts, coding = text("hello")
    out("national", answers=submit(cl, parts, **ALPHA, dest_addr_ton=c.SMPP_TON_NATNL,
                                   dest_addr_npi=c.SMPP_NPI_ISDN, destination_addr="0612345678",
                                   **coding))

    cl.send_pdu(smpplib.smpp.make_pdu("enquire_link", client=cl))
    r = read_until(cl, "enquire_link_resp")
    out("enquire_link", status=r.status)

    r = cl.unbind()
    out("unbind", command=r.command, status=r.status)
    cl.disconnect()


def receipt():
    rx = client()
    rx.bind_receiver(system_id=SYSTEM_ID, password=PASSWORD)
    tx = client()
    tx.bind_transmitter(system_id=SYSTEM_ID, password=PASSWORD)
    parts, coding = text("Soldes -50% ce week-end !")
    answers = submit(tx, parts, **ALPHA, **international(OPTED_OUT), **coding,
                     registered_delivery=c.SMPP_SMSC_DELIVERY_RECEIPT_BOTH)
    out("blocked_accepted", answers=answers)
    d = read_until(rx, "deliver_sm")
    rx._message_received(d)
    out("receipt", esm_class=d.esm_class, short_message=d.short_message.decode(),
        receipted_message_id=(d.receipted_message_id or b"").decode()
        if isinstance(d.receipted_message_id, bytes) else d.receipted_message_id,
        message_state=d.message_state, source_addr=d.source_addr.decode(),
        destination_addr=d.destination_addr.decode())
    tx.unbind()
    rx.unbind()


def receipt_fields(d):
    rid = d.receipted_message_id
    return dict(esm_class=d.esm_class, short_message=d.short_message.decode(),
                receipted_message_id=rid.decode() if isinstance(rid, bytes) else rid,
                message_state=d.message_state, source_addr=d.source_addr.decode(),
                destination_addr=d.destination_addr.decode())


def wait_for_test():
    if not sys.stdin.readline():
        raise RuntimeError("the test went away")


def receipts_later():
    parts, coding = text("Your code: 1234")
    # A receipt that comes after the provider's delivery report, on a live bind.
    cl = client()
    cl.bind_transceiver(system_id=SYSTEM_ID, password=PASSWORD)
    answers = submit(cl, parts, service_type="OTP", **ALPHA, **international("+33612345678"),
                     **coding, registered_delivery=c.SMPP_SMSC_DELIVERY_RECEIPT_BOTH)
    out("submitted_live", answers=answers)
    wait_for_test()
    d = read_until(cl, "deliver_sm")
    cl._message_received(d)
    out("receipt_live", **receipt_fields(d))

    # Submitted, then unbound before the report: the receipt waits for a bind.
    answers = submit(cl, parts, service_type="OTP", **ALPHA, **international("+33612345679"),
                     **coding, registered_delivery=c.SMPP_SMSC_DELIVERY_RECEIPT_BOTH)
    out("submitted_away", answers=answers)
    r = cl.unbind()
    cl.disconnect()
    out("unbound", status=r.status)
    wait_for_test()
    rx = client()
    rx.bind_receiver(system_id=SYSTEM_ID, password=PASSWORD)
    d = read_until(rx, "deliver_sm")
    rx._message_received(d)
    out("receipt_after_reconnect", **receipt_fields(d))
    rx.unbind()
    rx.disconnect()


def throttle():
    cl = client()
    cl.bind_transmitter(system_id=SYSTEM_ID, password=PASSWORD)
    parts, coding = text("OTP 1234")
    statuses = []
    for i in range(6):
        cl.send_message(short_message=parts[0], service_type="OTP", **ALPHA,
                        **international("+3361234567%d" % i), **coding)
    for _ in range(6):
        statuses.append(read_until(cl, "submit_sm_resp").status)
    out("throttle", statuses=statuses)
    cl.unbind()


def tls():
    ctx = ssl.create_default_context(cafile=os.environ["CA_FILE"])
    ctx.check_hostname = False
    cl = client(ssl_context=ctx)
    r = cl.bind_transceiver(system_id=SYSTEM_ID, password=PASSWORD)
    parts, coding = text("Your code: 1234")
    out("tls", bind=r.status, answers=submit(cl, parts, service_type="OTP", **ALPHA,
                                             **international("+33612345678"), **coding))
    cl.unbind()


{"main": main, "receipt": receipt, "receipts_later": receipts_later, "throttle": throttle,
 "tls": tls}[os.environ["SCENARIO"]]()
