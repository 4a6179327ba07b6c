// Digital-certificate pages (templates/certificate_sign.html): copy the challenge, and read a
// signature file into the text area (a CMS file in binary DER is sent as base64).
// Served as a file: the Content-Security-Policy allows no inline script.
(function () {
  "use strict";
  document.querySelectorAll("[data-certificate]").forEach(function (box) {
    var status = box.querySelector("[data-status]");
    var copy = box.querySelector("[data-copy]");
    if (copy && navigator.clipboard) {
      copy.hidden = false;
      copy.addEventListener("click", function () {
        var source = document.getElementById(copy.getAttribute("data-copy"));
        navigator.clipboard.writeText(source.textContent).then(function () {
          if (status) { status.textContent = box.getAttribute("data-msg-copied"); }
        });
      });
    }
  });
  document.querySelectorAll("[data-file-field]").forEach(function (field) {
    var input = field.querySelector("input[type=file]");
    if (!input || !window.FileReader) { return; }
    field.hidden = false;
    input.addEventListener("change", function () {
      var file = input.files && input.files[0];
      var target = document.getElementById(input.getAttribute("data-fills"));
      if (!file || !target) { return; }
      var reader = new FileReader();
      reader.onload = function () {
        var bytes = new Uint8Array(reader.result);
        if (bytes.length > 0 && bytes[0] === 0x30) {
          // Binary DER: base64, which the gateway accepts as well.
          var s = "";
          for (var i = 0; i < bytes.length; i++) { s += String.fromCharCode(bytes[i]); }
          target.value = window.btoa(s);
        } else {
          target.value = new TextDecoder("utf-8").decode(bytes);
        }
      };
      reader.readAsArrayBuffer(file);
    });
  });
})();
