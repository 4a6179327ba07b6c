// The form_post response page (OAuth 2.0 Form Post Response Mode): submits the form carrying
// the authorization response to the service at once. Without JavaScript, the citizen presses
// the page's button instead.
(function () {
  "use strict";
  var form = document.getElementById("form-post");
  if (form) {
    form.submit();
  }
})();
