"""Office Math (OMML, ``m:oMath``) as LaTeX, the way a reader would type the formula:
fractions, scripts, radicals, delimiters, n-ary operators, functions, accents, limits,
matrices and equation arrays; Greek letters and operators by their LaTeX names."""

from __future__ import annotations

import xml.etree.ElementTree as ET

M = "{http://schemas.openxmlformats.org/officeDocument/2006/math}"
_W_T = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}t"

_SYMBOLS = {
    "α": r"\alpha", "β": r"\beta", "γ": r"\gamma", "δ": r"\delta", "ε": r"\epsilon",
    "ϵ": r"\epsilon", "ζ": r"\zeta", "η": r"\eta", "θ": r"\theta", "ϑ": r"\vartheta",
    "ι": r"\iota", "κ": r"\kappa", "λ": r"\lambda", "μ": r"\mu", "ν": r"\nu", "ξ": r"\xi",
    "π": r"\pi", "ρ": r"\rho", "σ": r"\sigma", "τ": r"\tau", "υ": r"\upsilon", "φ": r"\phi",
    "ϕ": r"\phi", "χ": r"\chi", "ψ": r"\psi", "ω": r"\omega", "Γ": r"\Gamma", "Δ": r"\Delta",
    "Θ": r"\Theta", "Λ": r"\Lambda", "Ξ": r"\Xi", "Π": r"\Pi", "Σ": r"\Sigma", "Φ": r"\Phi",
    "Ψ": r"\Psi", "Ω": r"\Omega", "∞": r"\infty", "≤": r"\leq", "≥": r"\geq", "≠": r"\neq",
    "±": r"\pm", "∓": r"\mp", "×": r"\times", "÷": r"\div", "·": r"\cdot", "⋅": r"\cdot",
    "→": r"\to", "←": r"\leftarrow", "⇒": r"\Rightarrow", "⇔": r"\Leftrightarrow",
    "∈": r"\in", "∉": r"\notin", "⊂": r"\subset", "⊆": r"\subseteq", "∪": r"\cup",
    "∩": r"\cap", "∂": r"\partial", "∇": r"\nabla", "≈": r"\approx", "≡": r"\equiv",
    "∝": r"\propto", "…": r"\ldots", "⋯": r"\cdots", "∀": r"\forall", "∃": r"\exists",
    "∅": r"\emptyset", "¬": r"\neg", "∧": r"\wedge", "∨": r"\vee", "°": r"^{\circ}",
    "′": "'", "−": "-", "∘": r"\circ", "⊥": r"\perp", "∠": r"\angle", "ℏ": r"\hbar",
    "ℓ": r"\ell", "∑": r"\sum", "∏": r"\prod", "∫": r"\int", "∬": r"\iint", "∭": r"\iiint",
    "∮": r"\oint", "⋃": r"\bigcup", "⋂": r"\bigcap", "√": r"\surd",
}
_NARY = {"∑": r"\sum", "∏": r"\prod", "∫": r"\int", "∬": r"\iint", "∭": r"\iiint",
         "∮": r"\oint", "⋃": r"\bigcup", "⋂": r"\bigcap", "∐": r"\coprod"}
_ACCENTS = {"\u0302": r"\hat", "\u0303": r"\tilde", "\u0307": r"\dot", "\u0308": r"\ddot",
            "\u20d7": r"\vec", "\u0305": r"\bar", "\u00af": r"\bar", "\u0301": r"\acute",
            "\u0300": r"\grave", "\u030c": r"\check", "\u0306": r"\breve"}
_FUNCTIONS = frozenset(
    ["sin", "cos", "tan", "cot", "sec", "csc", "arcsin", "arccos", "arctan", "sinh", "cosh", "tanh", "log", "ln", "exp", "lim", "max", "min", "sup", "inf", "det", "gcd", "deg", "dim", "ker", "arg"]
)
_DELIMS = {"{": r"\{", "}": r"\}", "": ".", "⌈": r"\lceil", "⌉": r"\rceil",
           "⌊": r"\lfloor", "⌋": r"\rfloor", "〈": r"\langle", "〉": r"\rangle",
           "⟨": r"\langle", "⟩": r"\rangle", "‖": r"\|"}


def _symbols(text: str) -> str:
    out = []
    for ch in text:
        name = _SYMBOLS.get(ch)
        out.append(f"{name} " if name and name[0] == "\\" and name[-1].isalpha() else (name or ch))
    return "".join(out)


def _prop(element: ET.Element, pr: str, name: str, default: str) -> str:
    found = element.find(f"{M}{pr}/{M}{name}")
    if found is None:
        return default
    return found.get(f"{M}val", default)


def _child(element: ET.Element, name: str) -> str:
    found = element.find(f"{M}{name}")
    return _inner(found) if found is not None else ""


def _group(text: str) -> str:
    text = text.strip()
    return text if len(text) == 1 else "{" + text + "}"


def _inner(element: ET.Element) -> str:
    return "".join(to_latex(child) for child in element)


def to_latex(element: ET.Element) -> str:
    """LaTeX for an OMML element (``m:oMath``, ``m:oMathPara`` or any inside them)."""
    tag = element.tag
    if not tag.startswith(M):
        if tag == _W_T:
            return _symbols(element.text or "")
        return _inner(element) if len(element) else ""
    name = tag[len(M):]
    if name.endswith("Pr"):
        return ""
    if name == "r":
        return "".join(_symbols(t.text or "") for t in element if t.tag in (f"{M}t", _W_T))
    if name == "t":
        return _symbols(element.text or "")
    if name == "oMathPara":
        return r" \\ ".join(to_latex(m) for m in element.iter(f"{M}oMath"))
    if name == "f":
        num, den = _child(element, "num"), _child(element, "den")
        if _prop(element, "fPr", "type", "bar") == "lin":
            return f"{_group(num)}/{_group(den)}"
        return f"\\frac{{{num}}}{{{den}}}"
    if name == "sSup":
        return f"{_group(_child(element, 'e'))}^{_group(_child(element, 'sup'))}"
    if name == "sSub":
        return f"{_group(_child(element, 'e'))}_{_group(_child(element, 'sub'))}"
    if name == "sSubSup":
        base = _group(_child(element, "e"))
        return f"{base}_{_group(_child(element, 'sub'))}^{_group(_child(element, 'sup'))}"
    if name == "sPre":
        pre = f"{{}}_{_group(_child(element, 'sub'))}^{_group(_child(element, 'sup'))}"
        return pre + _group(_child(element, "e"))
    if name == "rad":
        degree = _child(element, "deg").strip()
        body = _child(element, "e")
        return f"\\sqrt[{degree}]{{{body}}}" if degree else f"\\sqrt{{{body}}}"
    if name == "d":
        begin = _prop(element, "dPr", "begChr", "(")
        end = _prop(element, "dPr", "endChr", ")")
        sep = _prop(element, "dPr", "sepChr", "|")
        items = [_inner(e) for e in element.findall(f"{M}e")]
        return (
            f"\\left{_DELIMS.get(begin, begin)} {f' {sep} '.join(items)} \\right{_DELIMS.get(end, end)}"
        )
    if name == "nary":
        char = _prop(element, "naryPr", "chr", "∫")
        op = _NARY.get(char, _symbols(char).strip())
        sub, sup = _child(element, "sub").strip(), _child(element, "sup").strip()
        limits = (f"_{_group(sub)}" if sub else "") + (f"^{_group(sup)}" if sup else "")
        return f"{op}{limits} {_child(element, 'e')}"
    if name == "func":
        fname = _child(element, "fName").strip()
        fname = f"\\{fname}" if fname in _FUNCTIONS else fname
        return f"{fname}{{{_child(element, 'e')}}}"
    if name == "acc":
        accent = _ACCENTS.get(_prop(element, "accPr", "chr", "\u0302"), "\\hat")
        return accent + "{" + _child(element, "e") + "}"
    if name == "bar":
        under = _prop(element, "barPr", "pos", "bot") == "bot"
        command = "\\underline" if under else "\\overline"
        return command + "{" + _child(element, "e") + "}"
    if name == "groupChr":
        top = _prop(element, "groupChrPr", "pos", "bot") == "top"
        command = "\\overbrace" if top else "\\underbrace"
        return command + "{" + _child(element, "e") + "}"
    if name == "limLow":
        return f"{_child(element, 'e').strip()}_{_group(_child(element, 'lim'))}"
    if name == "limUpp":
        return f"{_child(element, 'e').strip()}^{_group(_child(element, 'lim'))}"
    if name == "m":
        rows = [
            " & ".join(_inner(e) for e in row.findall(f"{M}e"))
            for row in element.findall(f"{M}mr")
        ]
        return r"\begin{matrix}" + r" \\ ".join(rows) + r"\end{matrix}"
    if name == "eqArr":
        rows = [_inner(e) for e in element.findall(f"{M}e")]
        return r"\begin{array}{l}" + r" \\ ".join(rows) + r"\end{array}"
    return _inner(element)  # oMath, e, num, den, box, borderBox, phant...


def math_text(element: ET.Element) -> str:
    """A formula as inline LaTeX between dollar signs, one line."""
    latex = " ".join(to_latex(element).split())
    return f"${latex}$" if latex else ""
