"""``brushwork ui``: a local Gradio web app over every method (``pip install brushwork[ui]``).

One module per tab (:mod:`.transfer`, :mod:`.attention`, :mod:`.edit`, :mod:`.generate`,
:mod:`.evaluate`, :mod:`.study`); each holds its handlers (plain functions of the session
and the widget values, calling the same library functions as the CLI) and its layout.
:func:`brushwork.ui.app.build_app` puts the tabs together; :func:`brushwork.ui.app.launch`
serves them on 127.0.0.1.
"""
