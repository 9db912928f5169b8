// MathJax for pymdownx.arithmatex (generic mode: math arrives wrapped in \( \) and \[ \])
// and for the notebook pages, whose Markdown cells keep $...$ and $$...$$ as written.
// Code (pre, code) is never searched, so a shell prompt's $ stays a dollar sign.
window.MathJax = {
  tex: {inlineMath: [["\\(", "\\)"], ["$", "$"]], displayMath: [["\\[", "\\]"], ["$$", "$$"]],
        processEscapes: true, processEnvironments: true}
};
document$.subscribe(() => { MathJax.typesetPromise(); });
