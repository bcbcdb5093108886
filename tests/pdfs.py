"""Small, valid PDFs with real text, written by hand (the way a regulator's PDF carries its text:
a content stream of Helvetica text lines)."""

from __future__ import annotations

import zlib


def make_pdf(lines: list[str], created: str = "20260122150000+08'00'") -> bytes:
    """A one-page PDF whose extracted text is `lines`; `created` only changes the metadata."""

    def escape(text: str) -> str:
        return text.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

    content = "BT /F1 11 Tf 72 760 Td 14 TL " + " ".join(f"({escape(line)}) '" for line in lines) + " ET"
    objects = [
        "<< /Type /Catalog /Pages 2 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R "
        "/Resources << /Font << /F1 5 0 R >> >> >>",
        f"<< /Length {len(content)} >>\nstream\n{content}\nendstream",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        f"<< /Producer (HKMA document system) /CreationDate (D:{created}) >>",
    ]
    out = b"%PDF-1.4\n"
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n{body}\nendobj\n".encode("latin-1")
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{offset:010d} 00000 n \n" for offset in offsets).encode()
    out += (
        f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R /Info 6 0 R >>\nstartxref\n{xref}\n%%EOF\n"
    ).encode()
    return out


def make_pages_pdf(contents: list[bytes], form: bytes = b"") -> bytes:
    """A PDF with one page per content stream (Helvetica as /F1), each stream Flate-compressed as
    regulators' PDFs have them: a hostile one can be megabytes of instructions in a few KB. `form`:
    a Form XObject every page can draw as /Fm0 (`/Fm0 Do`)."""
    pages = len(contents)
    kids = " ".join(f"{5 + 2 * i} 0 R" for i in range(pages))
    form_stream = zlib.compress(form, 9)
    objects = [
        b"<< /Type /Catalog /Pages 2 0 R >>",
        f"<< /Type /Pages /Kids [{kids}] /Count {pages} >>".encode(),
        b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
        b"<< /Type /XObject /Subtype /Form /BBox [0 0 612 792] /Resources << /Font << /F1 3 0 R >> >> "
        + f"/Length {len(form_stream)} /Filter /FlateDecode >>\nstream\n".encode()
        + form_stream
        + b"\nendstream",
    ]
    for i, content in enumerate(contents):
        stream = zlib.compress(content, 9)
        objects.append(
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents {6 + 2 * i} 0 R "
            "/Resources << /Font << /F1 3 0 R >> /XObject << /Fm0 4 0 R >> >> >>".encode()
        )
        objects.append(
            f"<< /Length {len(stream)} /Filter /FlateDecode >>\nstream\n".encode() + stream + b"\nendstream"
        )
    out = b"%PDF-1.4\n"
    offsets = []
    for number, body in enumerate(objects, 1):
        offsets.append(len(out))
        out += f"{number} 0 obj\n".encode() + body + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += "".join(f"{offset:010d} 00000 n \n" for offset in offsets).encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return out


def text_page(*lines: str) -> bytes:
    return ("BT /F1 11 Tf 72 760 Td 14 TL " + " ".join(f"({line}) '" for line in lines) + " ET").encode()
