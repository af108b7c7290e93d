"""What can be checked of PDF/A-3 without veraPDF (a Java program, not installable here): the
rules an invoice PDF has broken before, read with pypdf. Not a conformance validator: it lists
the problems it knows to look for, and a PDF it passes is not proven PDF/A by it."""

import io
import re

from lxml import etree
from pypdf import PdfReader
from pypdf.generic import DictionaryObject

NS = {"rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#", "pdf": "http://ns.adobe.com/pdf/1.3/",
      "xmp": "http://ns.adobe.com/xap/1.0/", "dc": "http://purl.org/dc/elements/1.1/",
      "pdfaid": "http://www.aiim.org/pdfa/ns/id/"}
# ISO 19005-3 6.6.3: an info entry present must equal its XMP property.
INFO_IN_XMP = {"/Title": "dc:title/rdf:Alt/rdf:li", "/Author": "dc:creator/rdf:Seq/rdf:li",
               "/Subject": "dc:description/rdf:Alt/rdf:li", "/Keywords": "pdf:Keywords",
               "/Creator": "xmp:CreatorTool", "/Producer": "pdf:Producer",
               "/CreationDate": "xmp:CreateDate", "/ModDate": "xmp:ModifyDate"}


def _iso(pdf_date: str) -> str:
    """D:20261204201225+00'00' → 2026-12-04T20:12:25+00:00"""
    m = re.fullmatch(r"D:(\d{4})(\d\d)(\d\d)(\d\d)(\d\d)(\d\d)([+-]\d\d)'(\d\d)'?", pdf_date)
    if not m:
        return pdf_date
    y, mo, d, h, mi, s, tz_h, tz_m = m.groups()
    return f"{y}-{mo}-{d}T{h}:{mi}:{s}{tz_h}:{tz_m}"


def _fonts(resources: DictionaryObject | None, seen: set) -> list[tuple[str, DictionaryObject]]:
    found = []
    if not resources:
        return found
    for name, ref in (resources.get("/Font") or {}).items():
        found.append((name, ref.get_object()))
    for ref in (resources.get("/XObject") or {}).values():
        xobject = ref.get_object()
        if id(xobject) not in seen and xobject.get("/Subtype") == "/Form":
            seen.add(id(xobject))
            found += _fonts(xobject.get("/Resources"), seen)
    return found


def _embedded(font: DictionaryObject) -> bool:
    if font.get("/Subtype") == "/Type0":
        return all(_embedded(d.get_object()) for d in font["/DescendantFonts"])
    descriptor = font.get("/FontDescriptor")
    return descriptor is not None and any(
        key in descriptor.get_object() for key in ("/FontFile", "/FontFile2", "/FontFile3"))


def problems(data: bytes) -> list[str]:
    """What keeps this PDF from PDF/A-3B, as far as these checks see; [] when none."""
    reader = PdfReader(io.BytesIO(data))
    found = []
    if reader.is_encrypted:
        return ["encrypted"]
    root = reader.trailer["/Root"]
    for number, page in enumerate(reader.pages, start=1):
        for name, font in _fonts(page.get("/Resources"), set()):
            if not _embedded(font):
                found.append(f"page {number}: font {name} {font.get('/BaseFont')} not embedded")
    intents = [i.get_object() for i in root.get("/OutputIntents", [])]
    if not any(i.get("/S") == "/GTS_PDFA1" and "/DestOutputProfile" in i for i in intents):
        found.append("no PDF/A output intent with an ICC profile")
    if "/Metadata" not in root:
        return [*found, "no XMP metadata"]
    stream = root["/Metadata"].get_object()
    if "/Filter" in stream:
        found.append("XMP metadata stream is filtered")
    xmp = etree.fromstring(stream.get_data())
    descriptions = xmp.find("rdf:RDF", NS)

    def prop(path: str) -> str | None:
        element = descriptions.find(f"rdf:Description/{path}", NS)
        return element.text if element is not None else None

    if (prop("pdfaid:part"), prop("pdfaid:conformance")) != ("3", "B"):
        found.append("XMP does not claim PDF/A-3B")
    for key, value in (reader.trailer.get("/Info") or {}).items():
        if key in INFO_IN_XMP:
            expected = _iso(str(value)) if key.endswith("Date") else str(value)
            if prop(INFO_IN_XMP[key]) != expected:
                found.append(f"info {key} {expected!r} but XMP {prop(INFO_IN_XMP[key])!r}")
    names = root.get("/Names", {}).get("/EmbeddedFiles", {}).get("/Names", [])
    associated = [spec.get_object() for spec in root.get("/AF", [])]
    for spec in (ref.get_object() for ref in names[1::2]):
        if spec not in associated:
            found.append(f"embedded file {spec.get('/F')} not in the catalog's /AF")
        if spec.get("/AFRelationship") not in ("/Data", "/Source", "/Alternative",
                                               "/Supplement", "/Unspecified"):
            found.append(f"embedded file {spec.get('/F')} without AFRelationship")
        if not {"/F", "/UF"} <= set(spec):
            found.append(f"embedded file {spec.get('/F')} without F and UF")
        if "/Subtype" not in spec["/EF"]["/F"].get_object():
            found.append(f"embedded file {spec.get('/F')} without a MIME type")
    return found
